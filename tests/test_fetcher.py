"""The model fetcher (the init container of every model pod) against a real blob service.

Azure Storage cannot run here; Azurite, Microsoft's storage emulator, stands in for it (same REST API,
shared-key auth instead of workload identity, which needs Entra ID).
"""
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from azure.storage.blob import BlobServiceClient

from fetcher.content import folder_files, folder_hash
from pulumi_mocks import ROOT

AZURITE = os.environ.get("AZURITE_BIN", str(ROOT / ".tools/node_modules/.bin/azurite-blob"))
ACCOUNT, KEY = "devstoreaccount1", "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


@pytest.fixture(scope="module")
def blob_service(tmp_path_factory):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = tmp_path_factory.mktemp("azurite")
    proc = subprocess.Popen([AZURITE, "--blobHost", "127.0.0.1", "--blobPort", str(port), "--location", str(data),
                             "--silent", "--skipApiVersionCheck"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    connection = (f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};"
                  f"BlobEndpoint=http://127.0.0.1:{port}/{ACCOUNT};")
    deadline = time.monotonic() + 30
    while True:  # bounded wait for the emulator to listen
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "azurite did not start in 30 s"
            time.sleep(0.1)
    service = BlobServiceClient.from_connection_string(connection)
    service.create_container("models")
    yield connection, service.get_container_client("models")
    proc.terminate()
    proc.wait(10)


def upload(container, prefix: str, folder: Path) -> None:
    for relative, path in folder_files(folder):
        container.upload_blob(f"{prefix}/{relative}", path.read_bytes(), overwrite=True)


def fetch(connection: str, *copies: str) -> subprocess.CompletedProcess:
    args = [sys.executable, "-m", "fetcher", "--account-url", "http://unused", "--container", "models",
            "--connection-string", connection]
    for copy in copies:
        args += ["--copy", copy]
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_the_fetcher_puts_a_content_hash_prefix_in_place_and_checks_it(blob_service, tmp_path):
    connection, container = blob_service
    model = ROOT / "models/sentiment/model-v1"
    prefix = f"models/{folder_hash(model)}"
    upload(container, prefix, model)
    result = fetch(connection, f"{prefix}={tmp_path / 'app'}")
    assert result.returncode == 0, result.stderr
    assert folder_hash(tmp_path / "app") == folder_hash(model)
    assert (tmp_path / "app/weights.json").read_bytes() == (model / "weights.json").read_bytes()


def test_a_changed_blob_fails_the_pod_start_instead_of_serving_other_files(blob_service, tmp_path):
    connection, container = blob_service
    model = tmp_path / "model"
    shutil.copytree(ROOT / "models/sentiment/model-v2", model)
    prefix = f"models/{folder_hash(model)}"
    upload(container, prefix, model)
    container.upload_blob(f"{prefix}/weights.json", b"{}", overwrite=True)
    result = fetch(connection, f"{prefix}={tmp_path / 'app'}")
    assert result.returncode == 1
    assert f"{prefix}: downloaded files hash to" in result.stderr


def test_a_missing_upload_is_named(blob_service, tmp_path):
    connection, _ = blob_service
    result = fetch(connection, f"models/{'0' * 64}={tmp_path / 'app'}")
    assert result.returncode == 1
    assert "no files in the container" in result.stderr

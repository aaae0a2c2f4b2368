"""The model fetcher (the init container of every model pod) against a real blob service.

Azure Storage cannot run here; Azurite, Microsoft's storage emulator, stands in for it (same REST API,
shared-key auth instead of workload identity, which needs Entra ID).
"""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from azure.storage.blob import BlobServiceClient

from fetcher.content import folder_files, folder_hash
from azurite_emulator import azurite
from pulumi_mocks import ROOT



@pytest.fixture(scope="module")
def blob_service(tmp_path_factory):
    with azurite(tmp_path_factory.mktemp("azurite")) as (connection, _):
        service = BlobServiceClient.from_connection_string(connection)
        service.create_container("models")
        yield connection, service.get_container_client("models")


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

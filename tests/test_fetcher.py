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


class RefusedAtFirst:
    """Entra ID's propagation delay cannot happen here: this stand-in refuses the first `refusals` listings as a
    pod's token exchange (or its not yet propagated role) is refused, then lets Azurite answer."""

    def __init__(self, container, refusals: int, error) -> None:
        self.container, self.refusals, self.error, self.calls = container, refusals, error, 0

    def list_blobs(self, **kwargs):
        self.calls += 1
        if self.calls <= self.refusals:
            raise self.error
        return self.container.list_blobs(**kwargs)

    def download_blob(self, name):
        return self.container.download_blob(name)


def forbidden():
    from azure.core.exceptions import HttpResponseError
    error = HttpResponseError(message="This request is not authorized to perform this operation using this permission.")
    error.status_code = 403
    return error


@pytest.mark.parametrize("error", ["token exchange", "403"])
def test_a_pod_started_before_its_access_propagated_waits_for_it(blob_service, tmp_path, error):
    from azure.core.exceptions import ClientAuthenticationError
    from fetcher.fetch import Copy, fetch_when_allowed
    connection, container = blob_service
    model = ROOT / "models/sentiment/model-v1"
    prefix = f"models/{folder_hash(model)}"
    upload(container, prefix, model)
    refused = ClientAuthenticationError("AADSTS70021: No matching federated identity record found") \
        if error == "token exchange" else forbidden()
    waits = []
    stand_in = RefusedAtFirst(container, 3, refused)
    assert fetch_when_allowed(stand_in, Copy.parse(f"{prefix}={tmp_path / 'app'}"), sleep=waits.append) == 1
    assert stand_in.calls == 4 and waits == [2, 4, 8]
    assert folder_hash(tmp_path / "app") == folder_hash(model)


def test_access_still_refused_after_the_wait_is_named_and_other_errors_are_not_waited_for(blob_service, tmp_path):
    from azure.core.exceptions import ResourceNotFoundError
    from fetcher.fetch import Copy, FetchError, fetch_when_allowed
    connection, container = blob_service
    now = [0.0]

    def sleep(seconds):
        now[0] += seconds
    copy = Copy.parse(f"models/{'0' * 64}={tmp_path / 'app'}")
    with pytest.raises(FetchError, match=r"access still refused after 60 s: This request is not authorized.*"
                                         r"federated credential for this namespace and its Storage Blob Data Reader"):
        fetch_when_allowed(RefusedAtFirst(container, 100, forbidden()), copy, wait_seconds=60, sleep=sleep,
                           clock=lambda: now[0])
    assert 30 <= now[0] <= 60
    missing = RefusedAtFirst(container, 1, ResourceNotFoundError("The specified container does not exist."))
    with pytest.raises(ResourceNotFoundError):
        fetch_when_allowed(missing, copy, sleep=sleep)
    assert missing.calls == 1

"""Fixtures for the v1 runtime package (v1runtime/): a clean collection environment and Azurite.

The package is imported from its source folder; test_packaging.py checks the built wheel.
"""
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
V1RUNTIME = ROOT / "v1runtime"
sys.path.insert(0, str(V1RUNTIME))

from azureml.monitoring import _settings, _sinks  # noqa: E402
import azurite_emulator  # noqa: E402

VARIABLES = (_settings.MODE, _settings.V1_STORAGE, _settings.V1_ENABLED, _settings.SUBSCRIPTION,
             _settings.RESOURCE_GROUP, _settings.WORKSPACE, _settings.SERVICE, _settings.MODEL_DIR,
             _settings.BOUNDARY, _settings.DEBUG, _settings.FLUSH_INTERVAL, _settings.MAX_EVENTS,
             _settings.MAX_BYTES)


@pytest.fixture
def collection(monkeypatch, tmp_path):
    """Local collection into tmp_path/modeldata for service `svc` of workspace sub-1/rg-1/ws-1."""
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    directory = tmp_path / "modeldata"
    monkeypatch.setenv(_settings.MODE, str(directory))
    monkeypatch.setenv(_settings.SUBSCRIPTION, "Sub-1")
    monkeypatch.setenv(_settings.RESOURCE_GROUP, "RG-1")
    monkeypatch.setenv(_settings.WORKSPACE, "ws-1")
    monkeypatch.setenv(_settings.SERVICE, "svc")
    yield directory
    _sinks.close_all(10)
    _sinks._forget_after_fork()  # the next test starts with no writers


@pytest.fixture(scope="session")
def azurite(tmp_path_factory):
    """(connection string, blob endpoint) of an Azurite blob service on 127.0.0.1 with a `modeldata` container."""
    from azure.storage.blob import BlobServiceClient
    with azurite_emulator.azurite(tmp_path_factory.mktemp("azurite")) as (connection, endpoint):
        BlobServiceClient.from_connection_string(connection).create_container("modeldata")
        yield connection, endpoint

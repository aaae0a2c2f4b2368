"""ModelDataCollector's blob mode against a real blob service.

Azure Storage cannot run here; Azurite, Microsoft's storage emulator, stands in for it (same REST API,
shared-key auth through a connection string instead of workload identity, which needs Entra ID).
"""
import csv
import datetime
import io
import logging
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from azure.storage.blob import BlobServiceClient, BlobType

from azureml.monitoring import ModelDataCollector, _settings, _sinks

V1RUNTIME = Path(__file__).resolve().parents[2] / "v1runtime"
CORRELATION = ["$aml_dc_correlation_id", "$aml_dc_scoring_timestamp", "$aml_dc_boundary", "$aml_workspace",
               "$aml_service_name", "$aml_model_name", "$aml_model_version", "$aml_request_id"]


def blob_name(model, designation):
    now = datetime.datetime.now(datetime.timezone.utc)
    return f"sub-1/rg-1/ws-1/svc/{model}/3/{designation}/{now:%Y/%m/%d}/data.csv"


def read(connection, name):
    blob = BlobServiceClient.from_connection_string(connection).get_blob_client("modeldata", name)
    return blob.get_blob_properties().blob_type, blob.download_blob().readall()


def table(data):
    return list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))


@pytest.fixture
def blob(collection, azurite, monkeypatch):
    connection, endpoint = azurite
    monkeypatch.setenv(_settings.MODE, endpoint + "/modeldata")
    monkeypatch.setenv(_settings.V1_STORAGE, connection)
    return connection


def test_rows_are_appended_to_v1s_path_in_the_modeldata_container_from_the_background(blob, monkeypatch):
    monkeypatch.setenv(_settings.FLUSH_INTERVAL, "0.2")
    inputs = ModelDataCollector("bg-model", designation="inputs", feature_names=["a", "b"], model_version="3")
    predictions = ModelDataCollector("bg-model", designation="predictions", feature_names=["y"], model_version="3")
    first = inputs.collect([1, "x,y"])
    predictions.collect(predictions.add_correlations([0.5], first))
    second = inputs.collect([2, "z"])
    expected = {"inputs": [["a", "b"] + CORRELATION, ["1", "x,y"] + [str(first[n]) for n in CORRELATION],
                           ["2", "z"] + [str(second[n]) for n in CORRELATION]],
                "predictions": [["y"] + CORRELATION, ["0.5"] + [str(first[n]) for n in CORRELATION]]}
    found = {}
    deadline = time.monotonic() + 30
    while True:  # the uploader thread runs every 0.2 s; nothing here asks it to flush
        for designation in expected:
            try:
                found[designation] = read(blob, blob_name("bg-model", designation))
            except Exception:
                pass
        if all(designation in found and table(found[designation][1]) == rows
               for designation, rows in expected.items()):
            break
        assert time.monotonic() < deadline, f"the rows did not reach the blobs in 30 s: {found}"
        time.sleep(0.1)
    assert {kind for kind, _ in found.values()} == {BlobType.APPENDBLOB}
    assert found["inputs"][1].startswith(b"a,b,$aml_dc_correlation_id,") and found["inputs"][1].count(b"\r\n") == 3


def test_v1s_own_variables_turn_blob_collection_on(collection, azurite, monkeypatch):
    connection, _ = azurite
    monkeypatch.delenv(_settings.MODE)
    monkeypatch.setenv(_settings.V1_ENABLED, "true")
    monkeypatch.setenv(_settings.V1_STORAGE, connection)
    ModelDataCollector("v1-vars", designation="labels", model_version="3").collect([42])
    _sinks.close_all(10)  # what atexit does: upload what is buffered
    assert read(connection, blob_name("v1-vars", "labels")) == (BlobType.APPENDBLOB, b"42\r\n")


def test_replicas_appending_to_one_blob_leave_one_header_at_the_top(blob, azurite):
    _, endpoint = azurite
    script = ("import sys; sys.path.insert(0, sys.argv[1])\n"
              "from azureml.monitoring import ModelDataCollector\n"
              "c = ModelDataCollector('shared', designation='inputs', feature_names=['n'], model_version='3')\n"
              "[c.collect([n]) for n in range(int(sys.argv[2]))]\n")
    env = {**__import__("os").environ, "AML_MODEL_DC_FLUSH_INTERVAL_SECONDS": "0.05"}
    replicas = [subprocess.Popen([sys.executable, "-c", script, str(V1RUNTIME), str(count)], env=env)
                for count in (300, 300, 300)]
    assert [replica.wait(120) for replica in replicas] == [0, 0, 0]  # each uploads the rest at exit
    rows = table(read(blob, blob_name("shared", "inputs"))[1])
    assert rows[0] == ["n"] + CORRELATION and sum(row == rows[0] for row in rows) == 1
    assert sorted(int(row[0]) for row in rows[1:]) == sorted(n for n in range(300) for _ in range(3))
    assert len({row[1] for row in rows[1:]}) == 900  # every row whole: its own correlation id


def test_a_full_buffer_drops_and_counts_rows_with_one_log_line(blob, monkeypatch, caplog):
    monkeypatch.setenv(_settings.FLUSH_INTERVAL, "3600")
    monkeypatch.setenv(_settings.MAX_EVENTS, "8")  # at half full the uploader is woken; make it busy first
    sink = _sinks.sink_for(_settings.destination())
    caplog.set_level(logging.WARNING, logger="azureml.monitoring")
    with sink._lock:  # hold the buffer so the uploader cannot empty it while the calls arrive
        sink._events = 8
    collector = ModelDataCollector("drops", designation="signals", model_version="3")
    for n in range(5):
        collector.collect([n])
    assert sink.dropped_rows == 5
    warnings = [r for r in caplog.records if "drops rows" in r.getMessage()]
    assert len(warnings) == 1 and "buffer is full" in warnings[0].getMessage()
    with sink._lock:
        sink._events = 0
    collector.collect([99])
    _sinks.close_all(10)
    assert read(blob, blob_name("drops", "signals"))[1] == b"99\r\n"


def test_collect_never_waits_for_a_stuck_upload(collection, monkeypatch):
    with socket.socket() as stuck:  # accepts connections into its backlog and never answers
        stuck.bind(("127.0.0.1", 0))
        stuck.listen(16)
        port = stuck.getsockname()[1]
        monkeypatch.setenv(_settings.MODE, f"http://127.0.0.1:{port}/devstoreaccount1/modeldata")
        monkeypatch.setenv(_settings.V1_STORAGE, f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
                                                 f"AccountKey=a2V5;BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1;")
        monkeypatch.setenv(_settings.FLUSH_INTERVAL, "0.01")
        collector = ModelDataCollector("stuck", designation="inputs", feature_names=["a"], model_version="3")
        slowest = 0.0
        for n in range(300):
            started = time.perf_counter()
            collector.collect([n])
            slowest = max(slowest, time.perf_counter() - started)
            time.sleep(0.001)
        sink = _sinks.sink_for(_settings.destination())
        assert sink._thread.is_alive() and sink.uploaded_bytes == 0  # the uploader is stuck on the socket
        assert slowest < 1.0, f"a collect() call took {slowest * 1000:.1f} ms"  # an upload waits 30 s to time out
        sink.close(0.1)  # exit does not hang on it either
    _sinks._forget_after_fork()


def test_a_container_url_alone_authenticates_with_default_azure_credential(collection, monkeypatch):
    from azure.identity import DefaultAzureCredential
    monkeypatch.setenv(_settings.MODE, "https://acct.blob.core.windows.net/modeldata")
    sink = _sinks.sink_for(_settings.destination())
    container = sink._client()
    assert isinstance(container.credential, DefaultAzureCredential)
    assert (container.account_name, container.container_name) == ("acct", "modeldata")

"""azureml.monitoring.ModelDataCollector (v1runtime/): v1's API and CSV layout, written to a local directory."""
import csv
import datetime
import inspect
import io
import json
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

from azureml.monitoring import ModelDataCollector, _settings  # v1runtime/, put on sys.path by conftest.py

V1RUNTIME = Path(__file__).resolve().parents[2] / "v1runtime"

CORRELATION = ["$aml_dc_correlation_id", "$aml_dc_scoring_timestamp", "$aml_dc_boundary", "$aml_workspace",
               "$aml_service_name", "$aml_model_name", "$aml_model_version", "$aml_request_id"]
NO_REQUEST = "00000000-0000-0000-0000-000000000000"


def today(directory, model="best", version="3", designation="inputs", name="data.csv", hour=False):
    now = datetime.datetime.now(datetime.timezone.utc)
    parts = ["sub-1", "rg-1", "ws-1", "svc", model, version, designation, now.strftime("%Y"), now.strftime("%m"),
             now.strftime("%d")] + ([now.strftime("%H")] if hour else []) + [name]
    return directory.joinpath(*parts)


def rows(path):
    return list(csv.reader(io.StringIO(path.read_bytes().decode("utf-8"), newline="")))


def test_the_constructor_and_methods_have_v1s_signatures():
    # azureml-monitoring 0.1.0a21, the last release of v1's package.
    assert str(inspect.signature(ModelDataCollector)) == (
        "(model_name, designation='default', feature_names=None, workspace='default/default/default', "
        "webservice_name='default', model_version='default', collection_name='default')")
    assert str(inspect.signature(ModelDataCollector.collect)) == "(self, input_data, user_correlation_id='')"
    assert str(inspect.signature(ModelDataCollector.add_correlations)) == "(self, input_data, correlations)"
    assert ModelDataCollector.AML_DC_CORRELATION_HEADER == "$aml_dc_correlation_id"
    from azureml.monitoring.modeldatacollector import ModelDataCollector as same
    assert same is ModelDataCollector


def test_inputs_get_correlation_columns_and_the_call_returns_them(collection):
    inputs = ModelDataCollector("best", designation="inputs", feature_names=["f1", "f2"], model_version=3)
    before = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    correlations = inputs.collect([0.5, "a,b"], user_correlation_id="loan-42")
    assert list(correlations) == CORRELATION
    generated = correlations["$aml_dc_correlation_id"]
    assert generated.startswith("loan-42-") and uuid.UUID(generated[len("loan-42-"):]).version == 4
    stamp = datetime.datetime.strptime(correlations["$aml_dc_scoring_timestamp"], "%Y-%m-%dT%H:%M:%S.%f")
    assert abs((stamp - before).total_seconds()) < 5
    assert correlations["$aml_dc_boundary"] == 1440
    assert correlations["$aml_workspace"] == "sub-1/rg-1/ws-1"  # lowercased, as v1
    assert (correlations["$aml_service_name"], correlations["$aml_model_name"]) == ("svc", "best")
    assert correlations["$aml_model_version"] == 3 and correlations["$aml_request_id"] == NO_REQUEST

    second = inputs.collect([1, 2])
    assert uuid.UUID(second["$aml_dc_correlation_id"]).version == 4  # no user id: the uuid alone
    assert second["$aml_dc_correlation_id"] != generated[len("loan-42-"):]
    path = today(collection)
    assert rows(path) == [
        ["f1", "f2"] + CORRELATION,
        ["0.5", "a,b"] + [str(correlations[name]) for name in CORRELATION],
        ["1", "2"] + [str(second[name]) for name in CORRELATION]]
    assert path.read_bytes().count(b"\r\n") == 3  # v1 used the csv module's default line ends


def test_predictions_return_nothing_and_carry_correlations_only_when_added(collection):
    inputs = ModelDataCollector("best", designation="inputs", feature_names=["x"], model_version="3")
    predictions = ModelDataCollector("best", designation="predictions", feature_names=["y"], model_version="3")
    correlations = inputs.collect([1.5])
    assert predictions.add_correlations([7], None) == [7]
    assert predictions.collect(predictions.add_correlations([7], correlations)) is None
    assert rows(today(collection, designation="predictions")) == [
        ["y"] + CORRELATION, ["7"] + [str(correlations[name]) for name in CORRELATION]]


def test_rows_with_correlations_land_in_the_partition_of_their_own_scoring_time(collection):
    predictions = ModelDataCollector("best", designation="predictions", feature_names=["y"], model_version="3")
    old = {name: value for name, value in zip(CORRELATION, ["c-1", "2019-05-29T10:11:12.000123", 1440,
                                                            "sub-1/rg-1/ws-1", "svc", "best", "2", NO_REQUEST])}
    predictions.collect(predictions.add_correlations([0.25], old))
    path = collection / "sub-1/rg-1/ws-1/svc/best/2/predictions/2019/05/29/data.csv"
    assert rows(path) == [["y"] + CORRELATION, ["0.25"] + [str(old[name]) for name in CORRELATION]]


def test_no_feature_names_no_header_and_a_list_is_one_row(collection):
    general = ModelDataCollector("best", model_version="3")  # designation 'default' is v1's 'general'
    assert general.collect([[1, 2], 3]) is None
    assert rows(today(collection, designation="general")) == [["[1, 2]", "3"]]


def test_signals_and_general_write_their_collection_name(collection):
    ModelDataCollector("best", designation="signals", model_version="3", collection_name="drift").collect([1])
    ModelDataCollector("best", designation="labels", model_version="3", collection_name="ignored").collect([2])
    assert rows(today(collection, designation="signals", name="drift.csv")) == [["1"]]
    assert rows(today(collection, designation="labels")) == [["2"]]  # data.csv: the name counts for signals/general


def test_numpy_arrays_are_rows_of_plain_numbers(collection):
    numpy = pytest.importorskip("numpy", reason="numpy is not installed in this venv")
    inputs = ModelDataCollector("best", designation="inputs", feature_names=["a", "b"], model_version="3")
    predictions = ModelDataCollector("best", designation="predictions", feature_names=["p"], model_version="3")
    data = numpy.array([[0.1, 2.0], [3.5, -4.25]])
    correlations = inputs.collect(data)
    predictions.collect(numpy.array([1.5, 2.5]))  # 1-D: one row
    predictions.collect(numpy.array([[7], [8]], dtype=numpy.int64))
    extra = [str(correlations[name]) for name in CORRELATION]
    assert rows(today(collection)) == [["a", "b"] + CORRELATION, ["0.1", "2.0"] + extra, ["3.5", "-4.25"] + extra]
    assert rows(today(collection, designation="predictions")) == [["p"], ["1.5", "2.5"], ["7"], ["8"]]
    widened = predictions.add_correlations(numpy.array([9.0]), correlations)
    assert widened.shape == (1, 9) and list(widened[0][1:]) == [correlations[name] for name in CORRELATION]


def test_dataframes_use_their_columns_as_the_header(collection):
    pandas = pytest.importorskip("pandas", reason="pandas is not installed in this venv")
    inputs = ModelDataCollector("best", designation="inputs", model_version="3")
    frame = pandas.DataFrame({"age": [31, 45], "income": [1000.5, None]})
    correlations = inputs.collect(frame)
    inputs.collect(pandas.DataFrame({"age": [50], "income": [2.0]}))
    table = rows(today(collection))
    assert table[0] == ["age", "income"] + CORRELATION
    assert table[1] == ["31", "1000.5"] + [str(correlations[name]) for name in CORRELATION]
    assert table[2][:2] == ["45", ""] and table[3][:2] == ["50", "2.0"] and len(table) == 4
    assert list(frame.columns) == ["age", "income"]  # the caller's frame is left alone
    labels = ModelDataCollector("best", designation="labels", model_version="3")
    labels.collect(labels.add_correlations(pandas.DataFrame({"label": [1]}), correlations))
    assert rows(today(collection, designation="labels"))[0] == ["label"] + CORRELATION


def test_off_means_collect_does_nothing_and_returns_none(collection, monkeypatch, capsys):
    monkeypatch.setenv(_settings.MODE, "off")
    inputs = ModelDataCollector("best", designation="inputs", feature_names=["a"])
    assert inputs.collect([1]) is None
    assert inputs.add_correlations([1], inputs.collect([1])) == [1]
    assert not collection.exists()
    assert "Data collection is not enabled" in capsys.readouterr().out
    monkeypatch.delenv(_settings.MODE)  # nothing set at all: off too
    assert ModelDataCollector("best", designation="inputs").collect([1]) is None and not collection.exists()


def test_debug_prints_rows_even_when_off(collection, monkeypatch, capsys):
    monkeypatch.setenv(_settings.MODE, "off")
    monkeypatch.setenv(_settings.DEBUG, "true")
    correlations = ModelDataCollector("best", designation="inputs", feature_names=["a"]).collect([5])
    out = capsys.readouterr().out
    assert correlations is not None and out.startswith("a,$aml_dc_correlation_id,")
    assert correlations["$aml_dc_correlation_id"] in out and not collection.exists()


def test_an_unknown_designation_collects_nothing(collection, capsys):
    assert ModelDataCollector("best", designation="outputs").collect([1]) is None
    assert "Incorrect designation value" in capsys.readouterr().out and not collection.exists()


def test_hour_boundary_adds_the_hour_to_the_path(collection, monkeypatch):
    monkeypatch.setenv(_settings.BOUNDARY, "hour")
    correlations = ModelDataCollector("best", designation="inputs", model_version="3").collect([1])
    assert correlations["$aml_dc_boundary"] == 60
    assert rows(today(collection, hour=True))[0][0] == "1"


def test_the_default_version_and_names_come_from_the_deployment(collection, monkeypatch, tmp_path):
    models = tmp_path / "azureml-models"
    for version in ("2", "10", "9"):
        (models / "best" / version).mkdir(parents=True)
    monkeypatch.setenv(_settings.MODEL_DIR, str(models))  # several models: the newest version of this one
    assert ModelDataCollector("best").model_version == "10"
    monkeypatch.setenv(_settings.MODEL_DIR, str(models / "best" / "9"))  # one model: its own folder
    collector = ModelDataCollector("best", designation="inputs")
    assert (collector.model_version, collector.workspace, collector.service_name) == ("9", "sub-1/rg-1/ws-1", "svc")
    explicit = ModelDataCollector("best", workspace="S/R/W", webservice_name="other", model_version="1")
    assert (explicit.workspace, explicit.workspace_name, explicit.service_name) == ("s/r/w", "w", "other")


def test_v1s_config_map_fills_the_workspace_when_the_variables_are_unset(tmp_path):
    config_map = tmp_path / "model_config_map.json"
    config_map.write_text(json.dumps({"accountContext": {"subscriptionId": "SUB", "resourceGroupName": "Rg",
                                                         "accountName": "Ws"},
                                      "modelsInfo": {"best": {"4": {}, "12": {}}}}))
    facts = _settings.identity({"SERVICE_NAME": "svc"}, str(config_map))
    assert (facts.workspace, facts.service) == ("sub/rg/ws", "svc")
    assert _settings.identity({}, str(tmp_path / "missing.json")).workspace == "default/default/default"
    assert _settings.latest_model_version(None, "best", str(config_map)) == "12"


@pytest.mark.parametrize("environ, kind, target", [
    ({}, "off", None),
    ({"AKS_SERVING_MODELDATA": "OFF"}, "off", None),
    ({"AKS_SERVING_MODELDATA": "https://acct.blob.core.windows.net/modeldata/"}, "blob",
     "https://acct.blob.core.windows.net/modeldata"),
    ({"AML_MODEL_DC_STORAGE_ENABLED": "true", "AML_MODEL_DC_STORAGE": "AccountName=a"}, "blob", "modeldata"),
    ({"AML_MODEL_DC_STORAGE_ENABLED": "true"}, "off", None),  # v1 needed the connection string too
    ({"AKS_SERVING_MODELDATA": "/data/modeldata", "AML_MODEL_DC_STORAGE_ENABLED": "true",
      "AML_MODEL_DC_STORAGE": "AccountName=a"}, "local", "/data/modeldata"),
])
def test_the_environment_contract(environ, kind, target):
    found = _settings.destination(environ)
    assert (found.kind, found.target) == (kind, target)


@pytest.mark.parametrize("environ", [
    {"AKS_SERVING_MODELDATA": "https://acct.blob.core.windows.net"},
    {"AKS_SERVING_MODELDATA": "/d", "AML_MODEL_DC_FLUSH_INTERVAL_SECONDS": "soon"},
    {"AKS_SERVING_MODELDATA": "/d", "AML_MODEL_DC_EVENT_MAX_QUEUE_SIZE": "0"},
])
def test_a_malformed_setting_fails_the_collector_at_init(environ):
    with pytest.raises(ValueError, match="AKS_SERVING_MODELDATA|AML_MODEL_DC_"):
        _settings.destination(environ)


def test_threads_collecting_at_once_write_one_header_and_whole_rows(collection):
    inputs = ModelDataCollector("best", designation="inputs", feature_names=["thread", "i", "text"],
                                model_version="3")
    ids, errors = [], []

    def work(thread):
        try:
            for i in range(200):
                ids.append(inputs.collect([thread, i, "x" * 300 + ",\n" + str(i)])["$aml_dc_correlation_id"])
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    table = rows(today(collection))
    assert table[0] == ["thread", "i", "text"] + CORRELATION and len(table) == 1 + 8 * 200
    assert all(len(row) == 11 and row[2] == "x" * 300 + ",\n" + row[1] for row in table[1:])
    assert sorted((int(row[0]), int(row[1])) for row in table[1:]) == [(t, i) for t in range(8) for i in range(200)]
    assert len(set(ids)) == 1600 and set(ids) == {row[3] for row in table[1:]}


def test_worker_processes_appending_to_one_file_write_one_header(collection):
    script = ("import sys; sys.path.insert(0, sys.argv[1])\n"
              "from azureml.monitoring import ModelDataCollector\n"
              "c = ModelDataCollector('best', designation='predictions', feature_names=['p'], model_version='3')\n"
              "[c.collect([n]) for n in range(300)]\n")
    workers = [subprocess.Popen([sys.executable, "-c", script, str(V1RUNTIME)]) for _ in range(4)]
    assert [worker.wait(60) for worker in workers] == [0, 0, 0, 0]
    table = rows(today(collection, designation="predictions"))
    assert table[0] == ["p"] and table.count(["p"]) == 1
    assert sorted(int(row[0]) for row in table[1:]) == sorted(n for n in range(300) for _ in range(4))

"""`make run` on a stack of real Azure ML v1 samples (models/v1/, Pulumi.v1.yaml): their entry scripts,
conda files and models as published, each environment built with the Python its conda file pins.

pip runs with PyPI only (`PIP_CONFIG_FILE=/dev/null`), as on a user's machine: this machine's pip config
adds a local wheel folder whose newest wheels an old Python's pip would take and could not run.
"""
import csv
import json
import os
import time

import pytest
import requests

from local_stack import ROOT, served

SAMPLES = ROOT / "models" / "v1"


@pytest.fixture(scope="module")
def v1_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("v1")
    env = {k: v for k, v in os.environ.items() if k != "PIP_FIND_LINKS"} | {"PIP_CONFIG_FILE": "/dev/null"}
    # A fresh machine builds seven environments, TensorFlow's among them.
    with served(ROOT / "Pulumi.v1.yaml", folder / "state", env=env, timeout=3600) as run:
        yield run


def score(run, service: str, body: bytes, content_type: str = "application/json") -> requests.Response:
    uri = run.deployment()["services"][service]["scoringUri"]
    return requests.post(uri, data=body, headers={"Content-Type": content_type}, timeout=120)


def sample(name: str) -> bytes:
    return (SAMPLES / name / "sample-request.json").read_bytes()


# The answers each sample gave under its own inference server when it was collected (models/v1/README.md).
# Several scripts catch their own errors and answer 200 with the error's text, so the body is what counts.
@pytest.mark.parametrize("service, answer", [
    ("sklearn-rollout", [4952.815963589652, 3830.0345985229424]),
    ("multi-model", {"prediction1": [182.67335420683418, 90.99860655841785],
                     "prediction2": [202.63861242760504, 71.11080898817337]}),
    ("keras-folder", [2, 5, 9]),
])
def test_each_sample_scores_as_it_did_on_v1(v1_run, service, answer):
    resp = score(v1_run, service, sample(service))
    assert resp.status_code == 200 and resp.json() == answer


def test_a_rawhttp_script_gets_the_uploaded_image_as_sent(v1_run):
    # As the notebook sends it: the JPEG's bytes as the body, under an application/json Content-Type.
    jpeg = (SAMPLES / "resnet-rawhttp" / "sample.jpg").read_bytes()
    for content_type in ("application/json", "image/jpeg"):
        resp = score(v1_run, "resnet-rawhttp", jpeg, content_type)
        assert resp.status_code == 200
        assert resp.json() == [[1.4251641388208515e-21, 1.4251641388208515e-21, 1.4251641388208515e-21, 1.0,
                                1.4251641388208515e-21]]
    uri = v1_run.deployment()["services"]["resnet-rawhttp"]["scoringUri"]
    answer = requests.get(uri, timeout=60)
    assert answer.status_code == 405 and answer.text == "GET is not supported"


def test_inference_schema_builds_the_pandas_frame_the_script_predicts_on(v1_run):
    resp = score(v1_run, "powerbi-pandas", sample("powerbi-pandas"))
    assert resp.status_code == 200
    assert resp.json() == [[pytest.approx(205.59094435613133)], [pytest.approx(68.84146418576978)]]
    swagger = requests.get(v1_run.deployment()["services"]["powerbi-pandas"]["swaggerUri"], timeout=60).json()
    assert "AGE" in json.dumps(swagger)  # the schema the script's PandasParameterType sample declares


def test_onnx_runs_the_registered_model(v1_run):
    resp = score(v1_run, "onnx-mnist", sample("onnx-mnist"))
    assert resp.status_code == 200 and resp.json()["result"] == 5


def test_model_data_is_collected_in_v1s_layout_under_python_3_6(v1_run):
    resp = score(v1_run, "drift-mdc", sample("drift-mdc"))
    assert resp.status_code == 200 and resp.json() == [14.308757684810647]
    root = v1_run.state / "modeldata"
    files = sorted(root.rglob("*.csv"))
    assert files, f"no model data under {root}"
    parts = files[0].relative_to(root).parts
    # <subscription>/<resource group>/<workspace>/<service>/<model>/<version>/<designation>/yyyy/mm/dd/data.csv
    assert parts[:6] == ("local", "rg-mlw-v1", "mlw-v1", "drift-mdc", "elevation-regression-model.pkl", "1")
    assert parts[-1] == "data.csv"
    assert [f.relative_to(root).parts[6] for f in files] == ["inputs"]  # the sample collects its inputs only
    with open(files[0], newline="") as f:
        header, *rows = list(csv.reader(f))
    assert header[:5] == ["latitude", "longitude", "temperature", "windAngle", "windSpeed"]
    assert "$aml_dc_correlation_id" in header
    sent = json.loads(sample("drift-mdc"))["data"]
    assert [[float(v) for v in row[:5]] for row in rows] == [[float(v) for v in r] for r in sent]


def test_the_server_reads_model_ids_from_the_layout(v1_run):
    # Each replica's output is a file of its own (what `python -m aks_serving logs --local` reads).
    # A replica the autoscaler added moments ago may still be starting: each gets up to 60 s (bounded).
    deadline = time.monotonic() + 60
    while True:
        replicas = sorted((v1_run.state / "logs").glob("*/replica-*.log"))
        logs = [path.read_text() for path in replicas]
        starting = [p.parent.name for p, log in zip(replicas, logs) if "Listening at: http://127.0.0.1" not in log]
        if not starting or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert len(replicas) >= 7 and starting == []  # gunicorn started in every replica
    assert not any("Error while fetching model IDs" in log or "NotADirectoryError" in log for log in logs)

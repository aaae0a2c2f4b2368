"""A v1 entry script that collects model data, served by the real Azure ML inference server (gunicorn).

The server lives in its own venv (router/requirements-inference.txt); the v1 runtime package sits beside the
user's packages on PYTHONPATH, as it does in a model image.
"""
import csv
import datetime
import io
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
PYTHON = os.environ.get("ROUTER_INFERENCE_PYTHON") or str(REPO / ".venv-inference" / "bin" / "python")
pytestmark = pytest.mark.skipif(not Path(PYTHON).exists(), reason=(
    f"no inference-server interpreter at {PYTHON}: pip install -r router/requirements-inference.txt into "
    ".venv-inference or set ROUTER_INFERENCE_PYTHON"))

SCORE_PY = '''
import json
from azureml.monitoring import ModelDataCollector

def init():
    global inputs_dc, prediction_dc
    inputs_dc = ModelDataCollector("echo", designation="inputs", feature_names=["x"])
    prediction_dc = ModelDataCollector("echo", designation="predictions", feature_names=["y"])

def run(raw):
    x = json.loads(raw)["x"]
    correlations = inputs_dc.collect([x], user_correlation_id="case")
    prediction_dc.collect(prediction_dc.add_correlations([x * 2], correlations))
    return {"y": x * 2}
'''


def test_an_entry_script_collects_inputs_and_predictions_with_the_request_id(tmp_path):
    (tmp_path / "score.py").write_text(SCORE_PY)
    model = tmp_path / "azureml-models" / "echo" / "5"
    model.mkdir(parents=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(REPO / "v1runtime"), "AZUREML_ENTRY_SCRIPT": str(tmp_path / "score.py"),
           "AML_APP_ROOT": str(tmp_path), "AZUREML_MODEL_DIR": str(model),
           "AKS_SERVING_MODELDATA": str(tmp_path / "modeldata"), "SERVICE_NAME": "echo-svc",
           "AKS_SERVING_SUBSCRIPTION_ID": "sub", "AKS_SERVING_RESOURCE_GROUP": "rg",
           "AKS_SERVING_WORKSPACE_NAME": "ws"}
    server = subprocess.Popen([PYTHON, "-m", "gunicorn", "-b", f"127.0.0.1:{port}", "-w", "2",
                               "azureml_inference_server_http.server.entry:app"], env=env, cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:  # bounded wait for the server to answer its health check
            try:
                if requests.get(f"http://127.0.0.1:{port}/", timeout=5).status_code == 200:
                    break
            except requests.RequestException:  # not listening yet, or still starting its workers
                pass
            assert server.poll() is None, server.stderr.read().decode()[-3000:]
            assert time.monotonic() < deadline, "the inference server did not start in 60 s"
            time.sleep(0.2)
        for n in range(6):
            answer = requests.post(f"http://127.0.0.1:{port}/score", json={"x": n},
                                   headers={"x-request-id": f"req-{n}"}, timeout=30)
            assert answer.status_code == 200 and answer.json() == {"y": n * 2}, answer.text
    finally:
        server.terminate()
        server.wait(30)
    day = datetime.datetime.now(datetime.timezone.utc).strftime("%Y/%m/%d")
    folder = tmp_path / "modeldata/sub/rg/ws/echo-svc/echo/5"
    inputs = list(csv.reader(io.StringIO((folder / "inputs" / day / "data.csv").read_text(), newline="")))
    predictions = list(csv.reader(io.StringIO((folder / "predictions" / day / "data.csv").read_text(), newline="")))
    assert inputs[0] == ["x", "$aml_dc_correlation_id", "$aml_dc_scoring_timestamp", "$aml_dc_boundary",
                         "$aml_workspace", "$aml_service_name", "$aml_model_name", "$aml_model_version",
                         "$aml_request_id"]
    assert predictions[0] == ["y"] + inputs[0][1:]
    assert sorted(row[0] for row in inputs[1:]) == [str(n) for n in range(6)]
    for row in inputs[1:]:
        assert row[1].startswith("case-") and row[3:] == ["1440", "sub/rg/ws", "echo-svc", "echo", "5", f"req-{row[0]}"]
    # each prediction carries the correlation columns of its own input
    assert sorted((str(int(row[0]) // 2), row[1:]) for row in predictions[1:]) == sorted(
        (row[0], row[1:]) for row in inputs[1:])

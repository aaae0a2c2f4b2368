"""The model server's side of Application Insights: with the environment a model pod gets for
enableAppInsights (components/app_insights.model_env, Secret values filled in), the real inference server
(.venv-inference, on 127.0.0.1, through the image's entry point) sends print() output from run() as traces
and an exception from run() as an exception item. Azure's ingestion endpoint cannot be reached here; a
stand-in on 127.0.0.1 records what arrives (tests/ingestion_standin.py)."""
import asyncio
import os
import signal
import subprocess
from pathlib import Path

import pytest

from components.app_insights import CONNECTION_STRING_KEY, INSTRUMENTATION_KEY_KEY, instrumentation_key, model_env
from ingestion_standin import IngestionStandIn
from test_model_image_entrypoint import INFERENCE_PYTHON, ROOT, free_port, get

SCORE = '''
import json
def init():
    print("init says hello")
def run(raw):
    data = json.loads(raw)
    print("scoring", data["x"])
    if data["x"] < 0:
        raise ValueError("negative input %d" % data["x"])
    return {"echo": data["x"]}
'''


def pod_environment(connection_string: str) -> dict[str, str]:
    """model_env() as the kubelet resolves it: each secretKeyRef replaced by the Secret's value."""
    secret = {CONNECTION_STRING_KEY: connection_string, INSTRUMENTATION_KEY_KEY: instrumentation_key(connection_string)}
    return {e["name"]: e["value"] if "value" in e else secret[e["valueFrom"]["secretKeyRef"]["key"]]
            for e in model_env()}


@pytest.mark.skipif(not INFERENCE_PYTHON.exists(), reason="no .venv-inference (make venv)")
@pytest.mark.asyncio
async def test_print_and_exceptions_from_run_reach_app_insights(tmp_path: Path):
    ingestion = await IngestionStandIn().start()
    (tmp_path / "score.py").write_text(SCORE)
    port, health = free_port(), free_port()
    env = {**os.environ, **pod_environment(ingestion.connection_string),
           "PORT": str(port), "HEALTH_PORT": str(health), "BIND_HOST": "127.0.0.1", "WORKER_COUNT": "1",
           "AZUREML_ENTRY_SCRIPT": str(tmp_path / "score.py"), "AML_APP_ROOT": str(tmp_path),
           "SERVICE_NAME": "printer",
           # No network here: the SDK's own telemetry to Microsoft stays off (the pod's may go out).
           "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true"}
    process = subprocess.Popen([str(INFERENCE_PYTHON), str(ROOT / "envbuild/serve.py")], env=env, cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        async def call(x: int) -> int:
            return (await asyncio.to_thread(get, f"http://127.0.0.1:{port}/score", b'{"x": %d}' % x))[0]

        for _ in range(300):  # bounded: the server starts in a few seconds
            try:
                if (await asyncio.to_thread(get, f"http://127.0.0.1:{health}/", None, 2))[0] == 200:
                    break
            except OSError:
                pass
            assert process.poll() is None, process.stdout.read().decode()
            await asyncio.sleep(0.2)
        assert [await call(7), await call(-3)] == [200, 500]

        def messages():
            return [m["message"] for m in ingestion.of_type("MessageData")]

        # The server batches every 5 s.
        assert await ingestion.until(
            lambda: "scoring -3" in messages() and ingestion.of_type("ExceptionData"), 30), ingestion.envelopes
        assert "scoring 7" in messages() and "init says hello" in messages()
        (exception,) = ingestion.of_type("ExceptionData")
        details = exception["exceptions"][0]
        # The server wraps the script's exception; the stack holds the script's own, and its line.
        assert details["typeName"] == "UserScriptException" and details["hasFullStack"] is True
        assert "ValueError: negative input -3" in details["stack"] and "score.py\", line 9, in run" in details["stack"]
        assert all(e["iKey"] == instrumentation_key(ingestion.connection_string) for e in ingestion.envelopes)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
        await ingestion.close()

"""The model image's entry point (envbuild/serve.py) with real inference servers, bound to 127.0.0.1:
scoring on PORT, health on HEALTH_PORT, for a server with a health listener of its own and for one without."""
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
import venv
from pathlib import Path

import pytest

from local.interpreters import available

ROOT = Path(__file__).resolve().parents[1]
INFERENCE_PYTHON = Path(os.environ.get("ROUTER_INFERENCE_PYTHON") or ROOT / ".venv-inference" / "bin" / "python")
SCORE = "import json\ndef init():\n    pass\ndef run(raw):\n    return {'echo': json.loads(raw)['x']}\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, data: bytes | None = None, timeout: float = 10) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def serve(python: Path, tmp_path: Path):
    (tmp_path / "score.py").write_text(SCORE)
    port, health = free_port(), free_port()
    env = {**os.environ, "PORT": str(port), "HEALTH_PORT": str(health), "BIND_HOST": "127.0.0.1",
           "AZUREML_ENTRY_SCRIPT": str(tmp_path / "score.py"), "AML_APP_ROOT": str(tmp_path), "WORKER_COUNT": "1"}
    process = subprocess.Popen([str(python), str(ROOT / "envbuild/serve.py")], env=env, cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while True:  # bounded: the server imports and runs init() in a few seconds
        try:
            if get(f"http://127.0.0.1:{health}/", timeout=2)[0] == 200:
                break
        except OSError:
            pass
        assert process.poll() is None and time.monotonic() < deadline, process.stdout.read().decode()
        time.sleep(0.2)
    return process, port, health


def check_serves_then_stops(process, port, health):
    status, body = get(f"http://127.0.0.1:{port}/score", b'{"x": 7}')
    assert status == 200 and json.loads(body) == {"echo": 7}
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0
    for p in (port, health):
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", p), timeout=1).close()


@pytest.mark.skipif(not INFERENCE_PYTHON.exists(), reason="no .venv-inference (make venv)")
def test_a_current_server_scores_and_its_health_is_answered_on_the_health_port(tmp_path):
    process, port, health = serve(INFERENCE_PYTHON, tmp_path)
    assert get(f"http://127.0.0.1:{health}/")[0] == 200
    check_serves_then_stops(process, port, health)


OLD_PYTHONS = [v for v in ("3.10", "3.9", "3.8", "3.7") if v in available()]


@pytest.fixture(scope="module")
def old_server(tmp_path_factory):
    """A virtualenv with inference server 0.7.7 (the newest for Python 3.6; it has no health listener)."""
    folder = tmp_path_factory.mktemp("server-077")
    subprocess.run([str(available()[OLD_PYTHONS[0]]), "-m", "venv", str(folder)], check=True)
    subprocess.run([str(folder / "bin/python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    "azureml-inference-server-http==0.7.7"], check=True)
    return folder / "bin/python"


@pytest.mark.skipif(not OLD_PYTHONS, reason="inference server 0.7.7 needs Python 3.7-3.10, which this machine lacks")
def test_an_old_server_is_run_and_its_health_answered_by_asking_it(old_server, tmp_path):
    process, port, health = serve(old_server, tmp_path)
    assert get(f"http://127.0.0.1:{health}/") == get(f"http://127.0.0.1:{port}/")  # the server's own answer
    check_serves_then_stops(process, port, health)

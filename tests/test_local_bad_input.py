"""`make run` with bad input: a clear message naming the service and the file, exit 1, nothing running."""
import socket
import subprocess

import pytest

from components.config import Environment
from components.environment import environment_hash
from local_stack import ROOT, dev_config, start, write_stack

BROKEN_INIT = '''
def init():
    raise RuntimeError("model file is corrupt")

def run(raw_data):
    return raw_data
'''


def run_to_failure(tmp_path, config, port=None) -> str:
    run = start(write_stack(tmp_path / "Pulumi.e2e.yaml", config), tmp_path / "state", port=port)
    assert run.process.wait(600) == 1
    assert not (tmp_path / "state" / "deployment.json").exists()
    return run.log()


def processes_mentioning(text: str) -> list[str]:
    result = subprocess.run(["pgrep", "-af", text], capture_output=True, text=True)
    return [line for line in result.stdout.splitlines() if "pgrep" not in line]


def test_missing_entry_script_is_named(tmp_path):
    config = dev_config()
    config["services"]["diabetes"]["entryScript"] = "models/diabetes/scor.py"
    assert "services.diabetes.entryScript: no file models/diabetes/scor.py" in run_to_failure(tmp_path, config)


def test_missing_model_file_is_named(tmp_path):
    config = dev_config()
    config["endpoints"]["sentiment-ab"]["versions"]["v2"]["models"] = ["models/sentiment/model-v3"]
    assert ("endpoints.sentiment-ab.versions.v2.models[0]: no file or folder models/sentiment/model-v3"
            in run_to_failure(tmp_path, config))


def test_broken_init_is_named_and_nothing_is_left_running(tmp_path):
    script = tmp_path / "broken" / "score.py"
    script.parent.mkdir()
    script.write_text(BROKEN_INIT)
    config = dev_config()
    config["services"]["broken"] = {"environment": "numpy", "entryScript": str(script)}
    log = run_to_failure(tmp_path, config)
    assert f"services.broken: init() in {script} failed: RuntimeError: model file is corrupt" in log
    assert processes_mentioning(str(tmp_path)) == []


def test_port_in_use_is_named(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        log = run_to_failure(tmp_path, dev_config(), port=port)
    assert f"port {port} on 127.0.0.1 is in use" in log
    assert processes_mentioning(str(tmp_path)) == []


@pytest.mark.parametrize("conda, package", [
    ("dependencies:\n  - python=3.11\n  - cudatoolkit-nonexistent-pkg=11.8\n", "cudatoolkit-nonexistent-pkg"),
])
def test_a_dependency_pip_cannot_provide_is_named_before_anything_starts(tmp_path, conda, package):
    conda_file = tmp_path / "conda.yml"
    conda_file.write_text(conda)
    config = dev_config()
    config["environments"]["numpy"]["condaFile"] = str(conda_file)
    log = run_to_failure(tmp_path, config)
    assert f"environments.numpy: pip cannot provide {package}" in log and str(conda_file) in log
    env = Environment(conda_file=str(conda_file))
    assert not (ROOT / ".serving" / "envs" / environment_hash(env, ROOT)).exists()  # never half-built


def test_a_python_this_machine_lacks_is_named_before_anything_is_built(tmp_path):
    conda = tmp_path / "old.yml"
    conda.write_text("dependencies:\n  - python=2.5\n  - pip:\n    - numpy\n")
    config = dev_config()
    config["environments"]["old"] = {"condaFile": str(conda)}
    config["services"]["old"] = {"environment": "old", "entryScript": "models/diabetes/score.py"}
    log = run_to_failure(tmp_path, config)
    assert f"environments.old ({conda}) asks for python 2.5; this machine has python " in log
    assert "building environment" not in log  # said before any environment is built

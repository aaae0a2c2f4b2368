"""How `make run` (and the image, with the same envbuild scripts) builds a v1 environment: the pinned
Python, numpy kept on a pinned compiled package's ABI, the inference server fitted around the user's
packages, and pip's failures said in one line."""
import json
import subprocess
import sys
import threading
import venv
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from local.environments import pip_failure
from local.interpreters import NoSuchPython, available, find_python

ROOT = Path(__file__).resolve().parents[1]
RUNNING = f"{sys.version_info.major}.{sys.version_info.minor}"


# ---- the pinned Python ---------------------------------------------------------------------------

def test_a_pin_this_machine_cannot_meet_is_named_with_what_there_is():
    with pytest.raises(NoSuchPython) as error:
        find_python("2.5", "environments.old (models/old/conda.yml)")
    message = str(error.value)
    assert message.startswith("environments.old (models/old/conda.yml) asks for python 2.5; this machine has python ")
    assert RUNNING in message and "pyenv install 2.5" in message


def test_a_pin_is_met_by_an_interpreter_of_that_minor_version():
    for minor, path in available().items():
        found = find_python(f"{minor}.1", "e")
        out = subprocess.run([str(found), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                             capture_output=True, text=True, check=True)
        assert out.stdout.strip() == minor
    assert find_python(None, "e") == Path(sys.executable)
    assert find_python(f">={RUNNING}", "e") == available()[RUNNING]  # a range the running Python meets


# ---- numpy's ABI: a stand-in for the package index's JSON simple API (PEP 691/700/658) ---------------

NUMPY_DEPENDENT = "Metadata-Version: 2.1\nName: x\nRequires-Dist: numpy>=1.17.3\nRequires-Dist: scipy\n"
NO_NUMPY = "Metadata-Version: 2.1\nName: x\nRequires-Dist: six\n"


def _files(name, version, uploaded, platform=True, metadata=NUMPY_DEPENDENT):
    tag = "cp311-cp311-manylinux_2_17_x86_64" if platform else "py3-none-any"
    return [{"filename": f"{name.replace('-', '_')}-{version}-{tag}.whl", "upload-time": uploaded,
             "url": f"/files/{name}-{version}.whl", "core-metadata": True, "_metadata": metadata}]


class StandInIndex:
    """Serves /simple/<project>/ as PEP 691 JSON and each wheel's PEP 658 metadata; counts requests."""

    def __init__(self, projects: dict) -> None:
        self.projects, self.requests = projects, []
        index = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                index.requests.append(self.path)
                if self.path.endswith(".metadata"):
                    wheel = self.path.removesuffix(".metadata")
                    body = next(f["_metadata"] for fs in index.projects.values() for f in fs if f["url"] == wheel)
                    return self._send(body.encode(), "text/plain")
                name = self.path.strip("/").split("/")[-1]
                if name not in index.projects:
                    return self._send(b"", "text/plain", 404)
                files = [{k: v for k, v in f.items() if k != "_metadata"} | {"url": f"{index.url}{f['url']}"}
                         for f in index.projects[name]]
                self._send(json.dumps({"meta": {"api-version": "1.1"}, "name": name, "files": files}).encode(),
                           "application/vnd.pypi.simple.v1+json")

            def _send(self, body, content_type, status=200):
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def index():
    stand_in = StandInIndex({
        "scikit-learn": _files("scikit-learn", "1.2.2", "2023-03-09T09:57:10Z")
                        + _files("scikit-learn", "1.2.1", "2023-01-20T10:00:00Z")
                        + _files("scikit-learn", "1.5.0", "2024-05-21T10:00:00Z")
                        + _files("scikit-learn", "1.6.1", "2025-01-10T10:00:00Z"),
        "pyyaml": _files("pyyaml", "5.4.1", "2021-01-20T10:00:00Z", metadata=NO_NUMPY),
        "joblib": _files("joblib", "1.0.1", "2021-02-09T10:00:00Z", platform=False),
    })
    yield stand_in
    stand_in.server.shutdown()


def numpy_abi(index, tmp_path, *pins):
    result = subprocess.run([sys.executable, str(ROOT / "envbuild/numpy_abi.py"), "--cache",
                             str(tmp_path / "releases.json"), *pins], capture_output=True, text=True, check=True,
                            env={"PIP_INDEX_URL": index.url + "/simple", "PATH": "/usr/bin:/bin"})
    return result.stdout.strip(), result.stderr.strip()


def test_a_pinned_compiled_release_from_before_numpy_2_keeps_numpy_below_2(index, tmp_path):
    line, why = numpy_abi(index, tmp_path, "joblib==1.0.1", "scikit-learn==1.2.2")
    assert line == "numpy<2"
    assert why == "scikit-learn 1.2.2 (2023-03-09) was built against numpy 1, so numpy stays below 2 as conda would keep it"
    # conda's prefix pin `=1.2` means the newest 1.2.x, and 1.5.0 is still from before numpy 2.
    assert numpy_abi(index, tmp_path, "scikit-learn==1.2")[1].startswith("scikit-learn 1.2.2 ")
    assert numpy_abi(index, tmp_path, "scikit-learn==1.5")[0] == "numpy<2"


def test_newer_pure_python_or_numpy_free_releases_leave_numpy_alone(index, tmp_path):
    assert numpy_abi(index, tmp_path, "scikit-learn==1.6.1") == ("", "")  # built for numpy 2
    assert numpy_abi(index, tmp_path, "joblib==1.0.1") == ("", "")  # pure Python
    assert numpy_abi(index, tmp_path, "pyyaml==5.4.1") == ("", "")  # compiled, but no numpy in its metadata
    assert numpy_abi(index, tmp_path, "nothere==1.0") == ("", "")  # the index does not know it: no guess


def test_release_facts_are_asked_once(index, tmp_path):
    numpy_abi(index, tmp_path, "scikit-learn==1.2.2")
    asked = len(index.requests)
    assert numpy_abi(index, tmp_path, "scikit-learn==1.2.2")[0] == "numpy<2"
    assert len(index.requests) == asked


# ---- pip's failures, in one line (real pip, real index) --------------------------------------------

def test_a_conflict_names_both_sides_not_pips_whole_output():
    result = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--no-input",
                             "requests==2.31.0", "urllib3==1.20"], capture_output=True, text=True)
    assert result.returncode != 0
    message = pip_failure("environments.old", "models/old/conda.yml", result.stdout + result.stderr)
    assert message.startswith("environments.old: the packages of models/old/conda.yml conflict: ")
    assert "urllib3==1.20" in message and "requests 2.31.0 depends on urllib3" in message
    assert "\n" not in message


# ---- the inference server, fitted around the user's packages (real pip, real index) ----------------

@pytest.fixture
def bare_env(tmp_path):
    folder = tmp_path / "env"
    venv.create(folder, with_pip=True)
    return folder / "bin" / "python"


def add_server(python):
    return subprocess.run([str(python), str(ROOT / "envbuild/add_server.py"), "0.8.0"],
                          capture_output=True, text=True)


def test_a_package_that_needs_an_older_server_is_named_not_overruled(bare_env, tmp_path):
    """Like azureml-defaults 1.13's pins: the server it allows is older than any the deployment runs, and the
    installed package is not overruled."""
    package = tmp_path / "old-defaults"
    package.mkdir()
    (package / "setup.py").write_text("from setuptools import setup\nsetup(name='old-defaults', version='1.13.0', "
                                      "install_requires=['azureml-inference-server-http~=0.4.2'])\n")
    subprocess.run([str(bare_env), "-m", "pip", "install", "--quiet", "--no-deps", str(package)], check=True)
    result = add_server(bare_env)
    assert result.returncode != 0
    message = pip_failure("environments.v1", "conda.yml", result.stdout + result.stderr, server=True)
    assert message.startswith("environments.v1: no azureml-inference-server-http 0.7.0 or newer fits the packages "
                              "conda.yml installs: ")
    assert "old-defaults 1.13.0 depends on azureml-inference-server-http~=0.4.2" in message


def test_the_server_is_added_around_the_installed_packages_and_a_recent_one_is_kept(bare_env):
    # click is one of the server's own dependencies (through Flask); the user's 8.1.7 must stay.
    subprocess.run([str(bare_env), "-m", "pip", "install", "--quiet", "click==8.1.7"], check=True)
    result = add_server(bare_env)
    assert result.returncode == 0, result.stderr
    assert "azureml-inference-server-http missing; adding the newest" in result.stdout
    versions = subprocess.run([str(bare_env), "-c", "from importlib.metadata import version as v; "
                               "print(v('click'), v('azureml-inference-server-http'))"],
                              capture_output=True, text=True, check=True).stdout.split()
    assert versions[0] == "8.1.7"
    again = add_server(bare_env)
    assert again.returncode == 0 and again.stdout.strip() == f"keeping the environment's azureml-inference-server-http {versions[1]}"


def test_a_release_with_no_wheel_for_this_python_is_named_with_its_build_error():
    # scikit-learn 0.22.1 (2019) has no wheel for Python 3.11: pip tries to build it, and that fails.
    result = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--no-input",
                             "scikit-learn==0.22.1"], capture_output=True, text=True)
    assert result.returncode != 0
    message = pip_failure("environments.old", "old.yml", result.stdout + result.stderr)
    assert message.startswith("environments.old: scikit-learn==0.22.1 has no wheel for this Python, and building "
                              "it from source failed (from old.yml): ")
    assert "Error: " in message and "\n" not in message


def test_a_server_fit_pip_cannot_settle_in_time_is_said_with_the_pins_to_look_at(bare_env, tmp_path, monkeypatch):
    from components.conda import read_conda_file
    from local import environments
    conda = tmp_path / "conda.yml"
    conda.write_text("dependencies:\n  - python=3.6.2\n  - pip:\n    - azureml-defaults~=1.13.0\n"
                     "    - inference-schema==1.1.0\n")
    monkeypatch.setattr(environments, "SERVER_FIT_SECONDS", 0.01)  # pip backtracks for many minutes in reality
    with pytest.raises(environments.EnvironmentBuildError) as error:
        environments._add_server(bare_env, "environments.old", "conda.yml", read_conda_file(conda), print)
    assert str(error.value) == (
        "environments.old: pip found no azureml-inference-server-http 0.7.0 or newer that fits the packages conda.yml "
        "installs within 0.01 s; exact pins hold it back most often (inference-schema==1.1.0). Loosen them, or list "
        "azureml-inference-server-http yourself at a version that fits.")


def test_the_azureml_sdk_packages_install_and_monitoring_is_the_working_one(tmp_path, monkeypatch):
    """azureml-sdk, azureml-defaults (and the server it brings) and azureml-monitoring, as v1 files list them;
    the PyPI alpha of azureml-monitoring is replaced by v1runtime's. PyPI only, as on a user's machine."""
    from components.config import Environment
    from local.environments import ensure_environment
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    (tmp_path / "conda.yml").write_text(f"dependencies:\n  - python={RUNNING}\n  - pip:\n    - azureml-sdk\n"
                                        "    - azureml-defaults\n    - azureml-monitoring\n")
    python = ensure_environment("sdk", Environment(conda_file="conda.yml"), tmp_path, tmp_path / "envs", say=print)
    check = ("from importlib.metadata import version as v\n"
             "from azureml.core.model import Model\n"
             "from azureml.monitoring import ModelDataCollector\n"
             "import azureml_inference_server_http.server\n"
             "print(v('azureml-sdk') == v('azureml-defaults'), v('azureml-monitoring'))\n")
    out = subprocess.run([str(python), "-c", check], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", "0.1.0+aks.serving.1"]

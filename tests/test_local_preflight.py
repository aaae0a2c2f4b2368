"""`make run`'s start-up check loads an entry script as the inference server does, with the real server."""
import os
from pathlib import Path

import pytest

from components.config import DeploymentSpec
from local.app_layout import AppLayout
from local.preflight import init_failure

ROOT = Path(__file__).resolve().parents[1]
PYTHON = Path(os.environ.get("ROUTER_INFERENCE_PYTHON") or ROOT / ".venv-inference" / "bin" / "python")
pytestmark = pytest.mark.skipif(not PYTHON.exists(), reason=f"no inference-server interpreter at {PYTHON} (make venv)")

RAWHTTP = '''
from azureml.contrib.services.aml_request import AMLRequest, rawhttp
from azureml.contrib.services.aml_response import AMLResponse
import helper  # a module beside the script, in its source folder

def init():
    global labels
    # v1's layout: the registered file sits in AZUREML_MODEL_DIR (azureml-models/<name>/<version>).
    labels = open(os.path.join(os.environ["AZUREML_MODEL_DIR"], "labels.txt")).read().split()
    assert os.environ["AZUREML_MODEL_DIR"].endswith("azureml-models/labels/3"), os.environ["AZUREML_MODEL_DIR"]
    assert helper.VALUE == 7

@rawhttp
def run(request):
    return AMLResponse(labels[0], 200)
'''


def deployment(tmp_path, script_text):
    source = tmp_path / "src"
    source.mkdir()
    (source / "score.py").write_text("import os\n" + script_text)
    (source / "helper.py").write_text("VALUE = 7\n")
    (tmp_path / "labels.txt").write_text("cat dog\n")
    spec = DeploymentSpec.model_validate({"environment": "e", "entryScript": str(source / "score.py"),
                                          "models": [{"path": str(tmp_path / "labels.txt"), "name": "labels",
                                                      "version": 3}]})
    return spec, AppLayout.build(tmp_path / "state", "services.v1", spec, tmp_path)


def test_a_rawhttp_script_passes_the_check_the_server_would_pass(tmp_path):
    spec, layout = deployment(tmp_path, RAWHTTP)
    assert init_failure("services.v1", spec, PYTHON, layout) is None
    # The layout is symlinks under the run's state folder; the user's folders are not written to.
    assert (layout.app_root / "azureml-models/labels/3/labels.txt").resolve() == tmp_path / "labels.txt"
    assert sorted(p.name for p in (tmp_path / "src").iterdir() if p.name != "__pycache__") == ["helper.py", "score.py"]


def test_a_script_the_server_could_not_load_is_named_with_its_error(tmp_path):
    spec, layout = deployment(tmp_path, RAWHTTP.replace("import helper", "import helpr"))
    problem = init_failure("services.v1", spec, PYTHON, layout)
    assert problem == f"services.v1: init() in {spec.entry_script} failed: ModuleNotFoundError: No module named 'helpr'"

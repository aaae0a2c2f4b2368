"""The v1 runtime distribution: what its wheel holds, the Python it runs on, and how it replaces v1's alpha.

Building and installing use pip as a model image build does, with PyPI for the pinned build backend and
for azureml-monitoring 0.1.0a21 (the PyPI package this one replaces).
"""
import ast
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

V1RUNTIME = Path(__file__).resolve().parents[2] / "v1runtime"


def pip(python, *args, cwd=None):
    result = subprocess.run([str(python), "-m", "pip", "--disable-pip-version-check", *args], cwd=cwd,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    work = tmp_path_factory.mktemp("v1runtime")
    source = work / "source"  # a copy: a build leaves build/ and *.egg-info beside the sources
    shutil.copytree(V1RUNTIME, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    pip(sys.executable, "wheel", "--no-deps", "--quiet", "-w", str(work / "dist"), str(source))
    (built,) = (work / "dist").glob("*.whl")
    return built


def test_the_wheel_is_azureml_monitoring_without_an_azureml_init(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        info = next(name for name in names if name.endswith(".dist-info/METADATA"))
        metadata = archive.read(info).decode()
    assert "azureml/__init__.py" not in names  # azureml stays a namespace shared with azureml-core
    assert {"azureml/monitoring/__init__.py", "azureml/monitoring/modeldatacollector.py",
            "azureml/monitoring/_settings.py", "azureml/monitoring/_sinks.py"} <= names
    assert "Name: azureml-monitoring\n" in metadata and "Requires-Python: >=3.6\n" in metadata
    requirements = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    assert len(requirements) == 6 and all("extra == 'blob'" in line and " ==" in line for line in requirements)


def test_the_sources_parse_as_python_3_7():
    for path in (V1RUNTIME / "azureml").rglob("*.py"):
        ast.parse(path.read_text(), str(path), feature_version=(3, 7))


def test_installing_it_replaces_the_pypi_alpha(wheel, tmp_path):
    subprocess.run([sys.executable, "-m", "venv", str(tmp_path / "venv")], check=True, timeout=300)
    python = tmp_path / "venv" / "bin" / "python"
    pip(python, "download", "--no-deps", "--quiet", "-d", str(tmp_path / "alpha"), "azureml-monitoring==0.1.0a21")
    pip(python, "install", "--no-deps", "--quiet", *map(str, (tmp_path / "alpha").iterdir()))
    site = Path(subprocess.check_output([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                        text=True).strip())
    assert (site / "azureml/monitoring/tools/modeldatacollector").is_dir()  # the alpha and its native library
    output = pip(python, "install", "--no-deps", str(wheel))
    assert "Successfully uninstalled azureml-monitoring-0.1.0a21" in output
    assert not (site / "azureml/monitoring/tools").exists()
    check = subprocess.run([str(python), "-c", (
        "import azureml.monitoring as m; from azureml.monitoring import ModelDataCollector\n"
        "print(m.__file__); print(ModelDataCollector('m', designation='inputs').collect([1]))")],
        capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert check.returncode == 0, check.stderr
    assert check.stdout.splitlines()[0] == str(site / "azureml/monitoring/__init__.py")
    assert check.stdout.splitlines()[-1] == "None"  # off: nothing in the environment turns it on
    again = pip(python, "install", "--no-deps", "azureml-monitoring")  # an unpinned v1 requirement
    assert "Requirement already satisfied: azureml-monitoring" in again

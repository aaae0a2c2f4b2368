"""Conda files as v1 users have them: read once, handed to pip locally as a requirements file."""
import pytest

from components.conda import CondaFileError, python_minor, read_conda_file

# What azureml-core's CondaDependencies wrote (its header, comments, a pip option line, channels last).
AZUREML_CORE_FILE = """\
# Conda environment specification. The dependencies defined in this file will
# be automatically provisioned for runs with userManagedDependencies=False.

# Details about the Conda environment file format:
# https://conda.io/docs/user-guide/tasks/manage-environments.html#create-env-file-manually

name: project_environment
dependencies:
  # The python interpreter version.
  # Currently Azure ML only supports 3.5.2 and later.
- python=3.6.2

- pip:
  - --find-links https://azuremlsdktestpypi.azureedge.net/sdk-release/Preview/E7501C02541B433786111FE8E140CAA1
  - --extra-index-url https://pypi.org/simple
  - azureml-defaults~=1.0.0
  - inference-schema[numpy-support]
- scikit-learn=0.22.1
- numpy==1.18.1
- pytorch
- tensorflow-gpu
- pip=20.2.4
- mkl
- conda-forge::pandas=1.0
channels:
- anaconda
- conda-forge
"""


def test_an_azureml_core_file_is_read_whole(tmp_path):
    path = tmp_path / "myenv.yml"
    path.write_text(AZUREML_CORE_FILE)
    conda = read_conda_file(path)
    assert conda.python == "3.6.2" and python_minor(conda.python) == "3.6"
    assert conda.channels == ("anaconda", "conda-forge")
    assert conda.skipped() == ["mkl"]
    lines = [line for line in conda.requirements_text().splitlines() if not line.startswith("#")]
    # Conda packages by PyPI name (conda's `=` a prefix match), then the pip section as written, options kept.
    assert conda.pip_version == "20.2.4"
    assert lines == ["scikit-learn==0.22.1", "numpy==1.18.1", "torch", "tensorflow", "pandas==1.0.*",
                     "--find-links https://azuremlsdktestpypi.azureedge.net/sdk-release/Preview/"
                     "E7501C02541B433786111FE8E140CAA1",
                     "--extra-index-url https://pypi.org/simple", "azureml-defaults~=1.0.0",
                     "inference-schema[numpy-support]"]


@pytest.mark.parametrize("pin, minor", [("3.8", "3.8"), ("3.8.13", "3.8"), ("3.8.*", "3.8"), (">=3.8", None),
                                        (None, None)])
def test_the_python_pin_is_matched_on_its_minor_version(pin, minor):
    assert python_minor(pin) == minor


def test_a_range_pin_on_python_is_kept_as_a_range(tmp_path):
    path = tmp_path / "conda.yml"
    path.write_text("dependencies:\n  - python>=3.8\n  - pip:\n    - requests\n")
    assert read_conda_file(path).python == ">=3.8"


@pytest.mark.parametrize("entry, message", [
    ("- 'numpy === 1'", "cannot read the dependency 'numpy === 1'"),
    ("- {conda: [numpy]}", "only `pip:` is a section"),
])
def test_an_unreadable_dependency_is_named_with_its_file(tmp_path, entry, message):
    path = tmp_path / "conda.yml"
    path.write_text(f"dependencies:\n{entry}\n")
    with pytest.raises(CondaFileError, match=message) as error:
        read_conda_file(path)
    assert str(path) in str(error.value)


def test_a_file_that_is_not_a_conda_mapping_is_refused(tmp_path):
    path = tmp_path / "conda.yml"
    path.write_text("- numpy\n")
    with pytest.raises(CondaFileError, match="is a mapping with `dependencies:`"):
        read_conda_file(path)

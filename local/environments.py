"""A virtualenv per environment, so a model's packages never clash with the tool's own.

Built as the image is (`components.image.render_dockerfile`), in two steps:
1. the user's environment alone: the conda file's Python (`local.interpreters`), its packages handed to pip
   as a requirements file (`components.conda`), numpy kept on the ABI of pinned compiled packages
   (`local.numpy_abi`);
2. the inference server, only if step 1 did not bring it (`azureml-defaults` does): the newest release
   that fits what step 1 installed, which stays as it is (every installed version is a constraint).
Cached under `.serving/envs/<environment hash>` (the hash that names the environment's image) and reused
while the environment's content is unchanged.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from components.conda import CondaFile, read_conda_file
from components.config import Environment
from components.environment import environment_hash
from local.interpreters import find_python
from local.numpy_abi import numpy_constraint

# The oldest inference server the local backend can run (`...server.entry:app` under gunicorn).
SERVER = "azureml-inference-server-http>=0.4.2"
SERVER_MODULE = "azureml_inference_server_http"
# Marks a finished build; named by the build's recipe, so a venv built by an older recipe is built again.
COMPLETE = ".complete-2"


class EnvironmentBuildError(Exception):
    """An environment pip cannot build; the message names the environment, the file and the package."""


def environment_python(env: Environment, root: Path, envs_dir: Path) -> Path:
    """Where the environment's interpreter lives once built (named by its content hash)."""
    return envs_dir / environment_hash(env, root) / "bin" / "python"


def ensure_environment(name: str, env: Environment, root: Path, envs_dir: Path, say=print) -> Path:
    """The environment's Python interpreter, building the virtualenv first if it is not cached."""
    python = environment_python(env, root, envs_dir)
    venv = python.parents[1]
    if (venv / COMPLETE).exists():
        return python
    if venv.exists():  # a build that did not finish: start again
        shutil.rmtree(venv)
    conda = read_conda_file(root / env.conda_file)
    where = f"environments.{name}"
    base = find_python(conda.python, f"{where} ({env.conda_file})")
    say(f"building environment {name} from {env.conda_file} with {base} in {venv} ...")
    for line in _notes(conda, where):
        say(line)
    try:
        subprocess.run([str(base), "-m", "venv", str(venv)], check=True, capture_output=True, text=True)
        _pip(python, where, env.conda_file, "install", "--upgrade", "pip")
        requirements = venv / "requirements.txt"
        requirements.write_text(conda.requirements_text())
        constraints = venv / "constraints.txt"
        constraint, why = numpy_constraint(conda, envs_dir / ".index")
        constraints.write_text(f"# {why}\n{constraint}\n" if constraint else "")
        if why:
            say(f"{where}: {why}")
        if any(line and not line.startswith("#") for line in conda.requirements_text().splitlines()):
            _pip(python, where, env.conda_file, "install", "-r", str(requirements), "-c", str(constraints))
        _add_server(python, where, env.conda_file, venv, say)
    except BaseException:
        shutil.rmtree(venv, ignore_errors=True)
        raise
    (venv / COMPLETE).write_text(conda.requirements_text())
    return python


def _notes(conda: CondaFile, where: str) -> list[str]:
    """What the local build does differently from conda, said once, so nothing is dropped silently."""
    notes = []
    if conda.channels and conda.packages:
        notes.append(f"{where}: conda packages come from PyPI locally (channels {', '.join(conda.channels)} "
                     f"are used by the image's conda)")
    if skipped := conda.skipped():
        notes.append(f"{where}: {', '.join(skipped)}: conda-only libraries, carried inside PyPI's wheels locally")
    return notes


def _add_server(python: Path, where: str, conda_file: str, venv: Path, say) -> None:
    """The inference server, when the environment lacks it, fitted around what is installed."""
    has = subprocess.run([str(python), "-c", f"import importlib.util, sys; "
                          f"sys.exit(importlib.util.find_spec('{SERVER_MODULE}') is None)"])
    if has.returncode == 0:
        return  # the environment's own (azureml-defaults brings one): its version is the user's choice
    frozen = venv / "installed.txt"
    listed = subprocess.run([str(python), "-m", "pip", "list", "--format=freeze", "--disable-pip-version-check"],
                            capture_output=True, text=True, check=True)
    frozen.write_text(listed.stdout)
    say(f"{where}: adding the inference server ({SERVER}, keeping every installed package as it is)")
    _pip(python, where, conda_file, "install", "-c", str(frozen), SERVER, server=True)


def _pip(python: Path, where: str, conda_file: str, *args: str, server: bool = False) -> None:
    result = subprocess.run([str(python), "-m", "pip", *args, "--quiet", "--disable-pip-version-check",
                             "--no-input"], capture_output=True, text=True)
    if result.returncode != 0:
        raise EnvironmentBuildError(pip_failure(where, conda_file, result.stderr, server))


_UNAVAILABLE = re.compile(r"(?:No matching distribution found for|Could not find a version that satisfies "
                          r"the requirement) ([^\s(]+)")
_CAUSE = re.compile(r"The conflict is caused by:\n((?:\s+.+\n?)+)")
_BUILD = re.compile(r"Failed (?:to build|building wheel for) ([^\s,]+)")
_BUILD_ERROR = re.compile(r"(?:error|Error|ERROR):? (.+)")


def pip_failure(where: str, conda_file: str, stderr: str, server: bool = False) -> str:
    """One paragraph naming the package and the conflict, not pip's whole output."""
    source = f"(from {conda_file})"
    if match := _CAUSE.search(stderr):
        causes = "; ".join(" ".join(line.split()) for line in match.group(1).strip().splitlines()[:6])
        if server:
            return (f"{where}: no azureml-inference-server-http release fits the packages {conda_file} "
                    f"installed: {causes}. Add azureml-defaults or azureml-inference-server-http to the "
                    f"conda file at a version that fits.")
        return f"{where}: the packages of {conda_file} conflict: {causes}"
    if match := _UNAVAILABLE.search(stderr):
        return f"{where}: pip cannot provide {match.group(1)} for this Python {source}"
    if match := _BUILD.search(stderr):
        errors = [m.group(1).strip() for m in _BUILD_ERROR.finditer(stderr)
                  if "subprocess-exited-with-error" not in m.group(1) and "Failed" not in m.group(1)]
        detail = f": {errors[0][:200]}" if errors else ""
        return (f"{where}: {match.group(1)} has no wheel for this Python and failed to build from source "
                f"{source}{detail}")
    tail = [line.strip() for line in stderr.strip().splitlines() if line.strip()][-3:]
    return f"{where}: pip failed {source}: " + " / ".join(tail)

"""A virtualenv per environment, so a model's packages never clash with the tool's own.

Built as the image is (`components.image.render_dockerfile`), with the same steps:
1. the user's environment alone: the conda file's Python (`local.interpreters`), its packages handed to pip
   as a requirements file (`components.conda`), numpy kept on the ABI of pinned compiled packages
   (`envbuild/numpy_abi.py`);
2. the inference server, kept if the environment brought one recent enough (`azureml-defaults` does), else
   the newest release that fits what step 1 installed, which stays as it is (`envbuild/add_server.py`);
3. Azure ML v1's runtime API (`v1runtime/`: `azureml.monitoring`), last, so it replaces the unusable PyPI
   alpha of that name. Locally model data goes to files, so without the blob extra.
Cached under `.serving/envs/<environment hash>` (the hash that names the environment's image) and reused
while the environment's content is unchanged.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from components.conda import CondaFile, read_conda_file
from components.config import Environment
from components.environment import build_files_digest, environment_hash
from envbuild import SERVER_MINIMUM
from local.interpreters import find_python

ENVBUILD = Path(__file__).resolve().parents[1] / "envbuild"
V1RUNTIME = Path(__file__).resolve().parents[1] / "v1runtime"
# Marks a finished build (the folder's name, the environment hash, counts the build recipe).
COMPLETE = ".complete"
SERVER_FIT_SECONDS = 600


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
        _pip(python, where, env.conda_file, "install", "--upgrade", _pip_for(conda, python))
        requirements = venv / "requirements.txt"
        requirements.write_text(wanted := conda.requirements_text())
        constraints = venv / "constraints.txt"
        constraints.write_text(_numpy_constraint(python, conda, envs_dir, where, say))
        if any(line and not line.startswith("#") for line in wanted.splitlines()):
            _pip(python, where, env.conda_file, "install", "-r", str(requirements), "-c", str(constraints))
        _add_server(python, where, env.conda_file, conda, say)
        _pip(python, where, env.conda_file, "install", "--no-deps", str(v1runtime_wheel(envs_dir)))
    except BaseException:
        shutil.rmtree(venv, ignore_errors=True)
        raise
    (venv / COMPLETE).write_text(wanted)
    return python


# The last pip for each Python it no longer supports. Asked by version: an old pip does not always check a
# wheel's Requires-Python (not on file:// indexes and find-links), so "the newest pip" could be one that
# cannot run on the Python it is installed into.
_LAST_PIP = {"3.6": "21.3.1", "3.7": "24.0", "3.8": "25.0.1"}


def _pip_for(conda: CondaFile, python: Path) -> str:
    """The pip that installs the environment: the conda file's own pin, as conda used it, else a current one."""
    if conda.pip_version:
        return f"pip=={conda.pip_version}"
    minor = subprocess.run([str(python), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                           capture_output=True, text=True, check=True).stdout.strip()
    return f"pip=={_LAST_PIP[minor]}" if minor in _LAST_PIP else "pip"


def _notes(conda: CondaFile, where: str) -> list[str]:
    """What the local build does differently from conda, said once, so nothing is dropped silently."""
    notes = []
    if conda.channels and conda.packages:
        notes.append(f"{where}: conda packages come from PyPI locally (channels {', '.join(conda.channels)} "
                     f"are used by the image's conda)")
    if skipped := conda.skipped():
        notes.append(f"{where}: {', '.join(skipped)}: conda-only libraries, carried inside PyPI's wheels locally")
    return notes


def v1runtime_wheel(envs_dir: Path) -> Path:
    """v1runtime as a wheel, built once per content with this Python: it is pure Python, and building it
    needs a setuptools that the oldest Pythons an environment may pin cannot run."""
    folder = envs_dir / ".wheels" / build_files_digest()[:16]
    wheels = sorted(folder.glob("azureml_monitoring-*.whl"))
    if not wheels:
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--disable-pip-version-check",
                        "-w", str(folder), str(V1RUNTIME)], check=True, capture_output=True, text=True)
        wheels = sorted(folder.glob("azureml_monitoring-*.whl"))
    return wheels[-1]


def _numpy_constraint(python: Path, conda: CondaFile, envs_dir: Path, where: str, say) -> str:
    """The constraints file's text: `numpy<2` when a pinned compiled release needs numpy 1 (else empty)."""
    cache = envs_dir / ".index" / "releases.json"
    cache.parent.mkdir(parents=True, exist_ok=True)
    result = subprocess.run([str(python), str(ENVBUILD / "numpy_abi.py"), "--cache", str(cache), *conda.pins()],
                            capture_output=True, text=True, check=True)
    if result.stderr.strip():
        say(f"{where}: {result.stderr.strip()}")
    return result.stdout


def _add_server(python: Path, where: str, conda_file: str, conda: CondaFile, say) -> None:
    """The inference server: the environment's own if recent enough, else one fitted around what is installed."""
    try:
        result = subprocess.run([str(python), str(ENVBUILD / "add_server.py"), SERVER_MINIMUM],
                                capture_output=True, text=True, timeout=SERVER_FIT_SECONDS)
    except subprocess.TimeoutExpired:
        # pip backtracks through every server release when none fits; past this, say so rather than wait on.
        pins = [line for line in conda.pip if "==" in line]
        raise EnvironmentBuildError(
            f"{where}: pip found no azureml-inference-server-http {SERVER_MINIMUM} or newer that fits the packages "
            f"{conda_file} installs within {SERVER_FIT_SECONDS} s; exact pins hold it back most often"
            + (f" ({', '.join(pins)})" if pins else "") + ". Loosen them, or list azureml-inference-server-http "
            f"yourself at a version that fits.") from None
    if result.returncode != 0:
        raise EnvironmentBuildError(pip_failure(where, conda_file, result.stdout + result.stderr, server=True))
    say(f"{where}: {result.stdout.splitlines()[0]}")  # what it decided; pip's own lines follow


def _pip(python: Path, where: str, conda_file: str, *args: str) -> None:
    # Not --quiet: pip says what conflicts (on stdout) only at its normal level.
    result = subprocess.run([str(python), "-m", "pip", *args, "--disable-pip-version-check", "--no-input"],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise EnvironmentBuildError(pip_failure(where, conda_file, result.stdout + result.stderr))


_UNAVAILABLE = re.compile(r"(?:No matching distribution found for|Could not find a version that satisfies "
                          r"the requirement) ([^\s(]+)")
_CAUSE = re.compile(r"The conflict is caused by:\n((?:[ \t]+\S.*\n?)+)")
_CANNOT = re.compile(r"Cannot install (.+?) because these package versions have conflicting dependencies")
_COLLECTING = re.compile(r"^\s*(?:Collecting|Building wheel for) (\S+)", re.M)
_EXCEPTION = re.compile(r"^\s*((?:\w+\.)*\w+(?:Error|Exception): .+)$", re.M)


def pip_failure(where: str, conda_file: str, output: str, server: bool = False) -> str:
    """One paragraph naming the package and the conflict, not pip's whole output."""
    source = f"(from {conda_file})"
    if match := _CAUSE.search(output):
        causes = "; ".join(" ".join(line.split()) for line in match.group(1).strip().splitlines()[:6])
        if server:
            return (f"{where}: no azureml-inference-server-http {SERVER_MINIMUM} or newer fits the packages "
                    f"{conda_file} installs: {causes}. Loosen the pin that holds it back, or list "
                    f"azureml-inference-server-http yourself at a version that fits.")
        return f"{where}: the packages of {conda_file} conflict: {causes}"
    if match := _CANNOT.search(output):
        return f"{where}: {match.group(1)} conflict with each other {source}"
    if match := _UNAVAILABLE.search(output):
        return f"{where}: pip cannot provide {match.group(1)} for this Python {source}"
    if "subprocess-exited-with-error" in output and (packages := _COLLECTING.findall(output)):
        # A source build (no wheel for this Python): the package being built and its build's own error.
        errors = _EXCEPTION.findall(output)
        detail = f": {errors[-1].strip()[:200]}" if errors else ""
        return (f"{where}: {packages[-1]} has no wheel for this Python, and building it from source failed "
                f"{source}{detail}")
    tail = [line.strip() for line in output.strip().splitlines()
            if line.strip() and not line.startswith("WARNING:")][-3:]
    return f"{where}: pip failed {source}: " + " / ".join(tail)

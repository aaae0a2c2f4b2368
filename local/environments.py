"""A virtualenv per environment, so a model's packages never clash with the tool's own.

Built from the conda file's dependencies plus the pinned Azure ML inference server, cached under
`.serving/envs/<environment hash>` (the hash that names the environment's image) and reused while
the environment's content is unchanged.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from components.config import Environment
from components.environment import environment_hash, pip_requirements

INFERENCE_REQUIREMENTS = Path(__file__).resolve().parents[1] / "router" / "requirements-inference.txt"
_UNAVAILABLE = re.compile(r"(?:No matching distribution found for|Could not find a version that satisfies "
                          r"the requirement) ([^\s(]+)")
_CONFLICT = re.compile(r"Cannot install (.+?) because these package versions have conflicting dependencies")


class EnvironmentBuildError(Exception):
    """An environment pip cannot build; the message names the environment, the file and the package."""


def environment_python(env: Environment, root: Path, envs_dir: Path) -> Path:
    """Where the environment's interpreter lives once built (named by its content hash)."""
    return envs_dir / environment_hash(env, root) / "bin" / "python"


def ensure_environment(name: str, env: Environment, root: Path, envs_dir: Path, say=print) -> Path:
    """The environment's Python interpreter, building the virtualenv first if it is not cached."""
    python = environment_python(env, root, envs_dir)
    venv = python.parents[1]
    if (venv / ".complete").exists():
        return python
    if venv.exists():  # a build that did not finish: start again
        shutil.rmtree(venv)
    conda_file = root / env.conda_file
    requirements = pip_requirements(conda_file).requirements
    say(f"building environment {name} ({len(requirements)} packages from {env.conda_file}) in {venv} ...")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    result = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "-r", str(INFERENCE_REQUIREMENTS), *requirements],
        capture_output=True, text=True)
    if result.returncode != 0:
        shutil.rmtree(venv, ignore_errors=True)
        raise EnvironmentBuildError(_pip_failure(name, env.conda_file, result.stderr))
    (venv / ".complete").write_text("\n".join(requirements) + "\n")
    return python


def _pip_failure(name: str, conda_file: str, stderr: str) -> str:
    if match := _UNAVAILABLE.search(stderr):
        return f"environments.{name}: pip cannot provide {match.group(1)} (from {conda_file})"
    if match := _CONFLICT.search(stderr):
        return (f"environments.{name}: {match.group(1)} conflict with each other or with the inference "
                f"server's pins (from {conda_file})")
    tail = [line for line in stderr.strip().splitlines() if line.strip()][-3:]
    return f"environments.{name}: pip failed for {conda_file}: " + " / ".join(tail)

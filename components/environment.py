"""What an environment is made of: its content hash and the pip requirements of its conda file.

The hash names the environment's image (`azureml/azureml_<hash>`) and its local virtualenv
(`.serving/envs/<hash>`), so both are built once per content. As in Azure ML, the environment's name
does not count and the order of dependencies does (the conda file's bytes are hashed as they are).
"""
from __future__ import annotations

import hashlib
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from components.config import Environment

# Conda packages that only manage the environment itself; pip and venv do that job locally.
_TOOLING = {"python", "pip", "setuptools", "wheel"}
_CONDA_SPEC = re.compile(r"^([A-Za-z0-9_.\-]+)\s*(?:(==|=|>=|<=|>|<|!=)\s*([^\s=]+))?(?:=\S+)?$")


def environment_hash(env: Environment, root: Path) -> str:
    """sha256 over the base image, the Docker steps and the conda file's contents."""
    digest = hashlib.sha256()
    digest.update(json.dumps({"baseImage": env.base_image, "dockerSteps": env.docker_steps}).encode())
    digest.update(b"\0")
    digest.update((root / env.conda_file).read_bytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class PipRequirements:
    requirements: list[str]  # in the conda file's order
    python: str | None  # the conda file's python pin, e.g. "3.11"


def pip_requirements(conda_file: Path) -> PipRequirements:
    """The pip requirements a conda file asks for: its `pip:` list plus its conda packages, in order.

    A conda package becomes the pip requirement of the same name (`numpy=1.26` -> `numpy==1.26.*`);
    whether pip can really provide it is found out when the environment is built.
    """
    document = yaml.safe_load(conda_file.read_text()) or {}
    requirements, python = [], None
    for dependency in document.get("dependencies") or []:
        if isinstance(dependency, dict):
            requirements += [str(r) for r in dependency.get("pip") or []]
            continue
        match = _CONDA_SPEC.match(str(dependency).strip())
        if match is None:
            raise ValueError(f"{conda_file}: cannot read the dependency {dependency!r}")
        name, op, version = match.groups()
        if name.lower() == "python":
            python = version
        elif name.lower() not in _TOOLING:
            requirements.append(_as_pip(name, op, version))
    return PipRequirements(requirements, python)


def _as_pip(name: str, op: str | None, version: str | None) -> str:
    if op is None:
        return name
    if op == "=":  # conda's `=` is a prefix match: 1.26 means any 1.26.x
        return f"{name}=={version}" if version.count(".") >= 2 else f"{name}=={version}.*"
    return f"{name}{op}{version}"


def python_mismatch(requirements: PipRequirements) -> str | None:
    """A warning when the conda file pins another Python than the one running the local deployment."""
    if requirements.python is None:
        return None
    running = f"{sys.version_info.major}.{sys.version_info.minor}"
    pinned = requirements.python.removesuffix(".*")
    if running == pinned or running.startswith(pinned + "."):
        return None
    return f"asks for python {requirements.python}; the local run uses {running}"

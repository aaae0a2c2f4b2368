"""What names an environment: its content hash.

The hash names the environment's image (`azureml/azureml_<hash>`) and its local virtualenv
(`.serving/envs/<hash>`), so both are built once per content. As in Azure ML, the environment's name
does not count and the order of dependencies does (the conda file's bytes are hashed as they are).
"""
from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path

from components.config import Environment
from fetcher.content import content_hash

# Bumped when the way an environment is built changes (components.image, local.environments), so no image
# or virtualenv built the old way is taken for the new one; the files the build copies in count by content.
RECIPE = 3
REPO = Path(__file__).resolve().parents[1]
BUILD_FILES = ("envbuild", "v1runtime")


def environment_hash(env: Environment, root: Path) -> str:
    """sha256 over the base image, the Docker steps, the conda file's contents and the build recipe."""
    digest = hashlib.sha256()
    digest.update(json.dumps({"baseImage": env.base_image, "dockerSteps": env.docker_steps,
                              "recipe": RECIPE, "buildFiles": build_files_digest()}).encode())
    digest.update(b"\0")
    digest.update((root / env.conda_file).read_bytes())
    return digest.hexdigest()


@lru_cache(maxsize=1)
def build_files_digest() -> str:
    """The content of envbuild/ and v1runtime/, which every environment's build copies in."""
    return content_hash((path.relative_to(REPO).as_posix(), path.read_bytes())
                        for folder in BUILD_FILES for path in (REPO / folder).rglob("*")
                        if path.is_file() and is_source(path.relative_to(REPO)))


def is_source(relative: Path) -> bool:
    """A file of the repository's own, not what building or importing it left behind."""
    return not any(part in ("build", "__pycache__") or part.endswith(".egg-info") for part in relative.parts)

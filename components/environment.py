"""What names an environment: its content hash.

The hash names the environment's image (`azureml/azureml_<hash>`) and its local virtualenv
(`.serving/envs/<hash>`), so both are built once per content. As in Azure ML, the environment's name
does not count and the order of dependencies does (the conda file's bytes are hashed as they are).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from components.config import Environment

# Bumped when the way an environment is built changes (components.image, local.environments), so no image
# or virtualenv built the old way is taken for the new one.
RECIPE = 2


def environment_hash(env: Environment, root: Path) -> str:
    """sha256 over the base image, the Docker steps, the conda file's contents and the build recipe."""
    digest = hashlib.sha256()
    digest.update(json.dumps({"baseImage": env.base_image, "dockerSteps": env.docker_steps,
                              "recipe": RECIPE}).encode())
    digest.update(b"\0")
    digest.update((root / env.conda_file).read_bytes())
    return digest.hexdigest()

"""`images:` how environment, router and fetcher images are built when no registry has their tag."""
from __future__ import annotations

from typing import Literal

from components.config_base import ConfigModel as _Model


class Images(_Model):
    # acr-task: ACR Tasks builds in the workspace registry, as Azure ML v1 did; `pulumi preview` and `up`
    # need no local Docker. docker: the local Docker daemon builds and pushes.
    builder: Literal["acr-task", "docker"] = "acr-task"

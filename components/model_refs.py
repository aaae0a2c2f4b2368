"""The models a deployment serves, and where they sit: Azure ML v1's layout, kept for scripts written for it.

v1 put each registered model at `<app root>/azureml-models/<name>/<version>/<what was registered>`: the
file, or the folder kept as a folder. `AZUREML_MODEL_DIR` was `azureml-models/<name>/<version>` for a
service with one model and `azureml-models` for several. azureml-core's `Model.get_model_path(name,
version)` reads `$AML_APP_ROOT/azureml-models` and expects exactly one entry in each version folder, and
the inference server reads model names and versions back from the same folders. The cluster (fetched
into the pod's app root) and `make run` (symlinks under the run's state folder) build the same tree.
"""
from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Optional

from pydantic import Field, model_validator

from components.config_base import ConfigModel

MODELS_FOLDER = "azureml-models"
# v1's model names: letters, digits, '-', '_' and '.', starting with a letter or digit, at most 255.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,254}$")


class ModelRef(ConfigModel):
    """A registered model: its file or folder, and the name and version scripts ask for (v1's
    `-m name:version`). A bare path in `models:` means name = the path's last part, version 1."""

    path: str
    name: Optional[str] = None
    version: int = Field(1, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _bare_path(cls, value):
        return {"path": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _name_rule(self) -> "ModelRef":
        if self.name is None:
            object.__setattr__(self, "name", PurePosixPath(self.path).name)
        if not _NAME.match(self.name):
            raise ValueError(f"name: {self.name!r} is not a v1 model name (letters, digits, '-', '_' and '.', "
                             f"starting with a letter or digit, at most 255 characters)")
        return self

    @property
    def id(self) -> str:
        return f"{self.name}:{self.version}"

    def folder(self) -> PurePosixPath:
        """`azureml-models/<name>/<version>`: the folder holding the registered file or folder."""
        return PurePosixPath(MODELS_FOLDER, self.name, str(self.version))

    def placed(self) -> PurePosixPath:
        """Where the registered file or folder itself sits, relative to the app root."""
        return self.folder() / PurePosixPath(self.path).name


def duplicate_ids(models: list[ModelRef]) -> list[str]:
    seen, repeated = set(), []
    for model in models:
        if model.id in seen:
            repeated.append(model.id)
        seen.add(model.id)
    return repeated


def model_dir(models: list[ModelRef]) -> Optional[PurePosixPath]:
    """AZUREML_MODEL_DIR relative to the app root: the model's version folder for one, all models for several."""
    if not models:
        return None
    return models[0].folder() if len(models) == 1 else PurePosixPath(MODELS_FOLDER)


def place_models(app_root: Path, models: list[ModelRef], root: Path) -> None:
    """Lay the models out under `app_root` as symlinks to their files (the local run's tree)."""
    for model in models:
        link = app_root / model.placed()
        target = (root / model.path).resolve()
        if link.is_symlink() and link.resolve() == target:
            continue
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(target)

"""Where a deployment's files are for the inference server under `make run`: v1's app root, built of
symlinks under the run's state folder (`apps/<deployment>/azureml-models/<name>/<version>/...`), so the
user's own folders are never written to and an edited model or script is what the next start reads."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from components.config import DeploymentSpec
from components.model_refs import model_dir, place_models


@dataclass(frozen=True)
class AppLayout:
    app_root: Path  # AML_APP_ROOT
    source_directory: Path  # on sys.path, and the working directory
    entry_script: Path
    model_dir: Path | None  # AZUREML_MODEL_DIR

    @classmethod
    def build(cls, state: Path, path: str, spec: DeploymentSpec, root: Path) -> "AppLayout":
        app_root = (state / "apps" / path).resolve()
        app_root.mkdir(parents=True, exist_ok=True)
        place_models(app_root, spec.models, root)
        relative = model_dir(spec.models)
        source = root / (spec.source_directory or Path(spec.entry_script).parent)
        return cls(app_root, source.resolve(), (root / spec.entry_script).resolve(),
                   app_root / relative if relative is not None else None)

    def env(self) -> dict[str, str]:
        """The variables the inference server and azureml-core read, as the pod sets them."""
        env = {"AML_APP_ROOT": str(self.app_root), "AZUREML_SOURCE_DIRECTORY": str(self.source_directory),
               "AZUREML_ENTRY_SCRIPT": str(self.entry_script)}
        if self.model_dir is not None:
            env["AZUREML_MODEL_DIR"] = str(self.model_dir)
        return env

    def backend(self) -> dict:
        """The local backend's settings for it (router.settings.LocalBackend)."""
        return {"entryScript": str(self.entry_script), "appRoot": str(self.app_root),
                "sourceDirectory": str(self.source_directory),
                "modelDir": str(self.model_dir) if self.model_dir is not None else None}

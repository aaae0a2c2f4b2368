"""The files a stack config names (conda files, entry scripts, source folders, models) exist in the project.

Checked wherever a config is checked, `make describe`, `make check`, `make run` and the Pulumi program, so a
missing file is named with its key before anything is built or created, not found by a pod on the cluster.
"""
from __future__ import annotations

from pathlib import Path

from components.config.stack import StackConfig


def missing_files(cfg: StackConfig, root: Path) -> list[str]:
    """One `key.path: no file ...` line per missing file; paths are relative to the project folder `root`."""
    problems = []
    for name, env in cfg.environments.items():
        if not (root / env.conda_file).is_file():
            problems.append(f"environments.{name}.condaFile: no file {env.conda_file}")
    for _, path, spec in cfg.deployments():
        if not (root / spec.entry_script).is_file():
            problems.append(f"{path}.entryScript: no file {spec.entry_script}")
        if spec.source_directory and not (root / spec.source_directory).is_dir():
            problems.append(f"{path}.sourceDirectory: no folder {spec.source_directory}")
        for i, model in enumerate(spec.models):
            if not (root / model.path).exists():
                problems.append(f"{path}.models[{i}]: no file or folder {model.path}")
    return problems

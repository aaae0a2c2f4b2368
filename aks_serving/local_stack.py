"""The stack `make run` serves on this machine as a target: its router.json, key files, replica log files
and the router's admin port on 127.0.0.1 (local/deployment.py writes them all under .serving/<stack>/)."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Iterator

from aks_serving.errors import CommandError
from aks_serving.target import KEY_FIELDS, LogSource
from local.deployment import DeploymentError, LocalDeployment
from local.secrets import replace_private, write_private
from local.status import fetch
from router.auth import mint_token
from router.settings import TokenAuth

FOLLOW_POLL_SECONDS = 0.2


class LocalStack:
    def __init__(self, deployment: LocalDeployment) -> None:
        self.deployment = deployment
        self.label = f"the local stack {deployment.stack}"
        self._config: dict | None = None

    def router_config(self) -> dict:
        if self._config is None:
            try:  # what `make run` wrote, re-rendered from the stack file (no environment is built)
                self._config = self.deployment.prepare(build=False)
            except DeploymentError as err:
                raise CommandError("\n".join(err.problems)) from None
        return self._config

    def status(self) -> dict:
        admin = self._running()["admin"]
        try:
            return fetch(admin)
        except OSError as err:
            raise CommandError(f"cannot reach the router's admin port {admin}: {err}") from None

    def log_sources(self, service: str, tail: int | None, follow: bool) -> list[LogSource]:
        folder = Path(self.router_config()["services"][service]["backend"]["logDir"])
        files = sorted(folder.glob("replica-*.log"))
        if not files:
            raise CommandError(f"{service}: no replica log in {folder}; is `make run STACK={self.deployment.stack}` "
                               f"serving it?")
        return [LogSource(f.stem, file_lines(f, tail, follow)) for f in files]

    def read_keys(self, owner: str, auth: dict) -> dict[str, str]:
        return {field: Path(path).read_text().strip() for field, path in zip(KEY_FIELDS.values(), auth["keyFiles"])}

    def write_key(self, owner: str, auth: dict, field: str, value: str) -> None:
        replace_private(Path(auth["keyFiles"][list(KEY_FIELDS.values()).index(field)]), value.encode())
        info_file = self.deployment.state / "deployment.json"
        if info_file.exists():  # get_keys() of the running stack reads it
            info = json.loads(info_file.read_text())
            for kind in ("services", "endpoints"):
                if field in info[kind].get(owner, {}):
                    info[kind][owner][field] = value
            write_private(info_file, json.dumps(info, indent=1).encode())

    def keep_key_advice(self, owner: str, kind: str, field: str) -> list[str]:
        return [f"The router reads the new key within a second; {self.deployment.state / 'deployment.json'} has it, "
                f"and `make run` keeps it across restarts (a stack file's own keys are Pulumi secrets, "
                f"which `make run` cannot read)."]

    def mint_token(self, owner: str, token_settings: dict) -> dict:
        return mint_token(TokenAuth.model_validate(token_settings), subject="local-user")

    def _running(self) -> dict:
        info_file = self.deployment.state / "deployment.json"
        if not info_file.exists():
            raise CommandError(f"{self.deployment.stack} is not running here (no {info_file}); start it with "
                               f"`make run STACK={self.deployment.stack}`")
        return json.loads(info_file.read_text())


def file_lines(path: Path, tail: int | None, follow: bool) -> Iterator[str]:
    """A file's lines (the last `tail` of them), then, with `follow`, each line as it is written."""
    with open(path, "rb") as f:
        lines = f.read().decode(errors="replace").splitlines()
        yield from lines if tail is None else lines[max(0, len(lines) - tail):]
        partial = ""
        while follow:
            chunk = f.read()
            if not chunk:
                time.sleep(FOLLOW_POLL_SECONDS)
                continue
            *complete, partial = (partial + chunk.decode(errors="replace")).split("\n")
            yield from complete

"""Start `python -m local run` on a copy of a stack file, on free loopback ports, in a state folder of its own."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import yaml

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_stack(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump({"config": {f"aks-serving:{k}": v for k, v in config.items()}}))
    return path


def dev_config() -> dict:
    document = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())
    return {k.split(":", 1)[1]: v for k, v in document["config"].items() if k.startswith("aks-serving:")}


@dataclass
class LocalRun:
    process: subprocess.Popen
    state: Path
    stack_file: Path
    port: int
    admin_port: int
    output: Path

    def run_args(self) -> list[str]:
        return [sys.executable, "-m", "local", "run", "--stack", "e2e", "--stack-file", str(self.stack_file),
                "--state-dir", str(self.state), "--port", str(self.port), "--admin-port", str(self.admin_port)]

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        """`python -m aks_serving VERB ... --local` on this run, as `make token`, `make status` ... call it."""
        return subprocess.run([sys.executable, "-m", "aks_serving", *args, "--local", "--stack", "e2e",
                               "--stack-file", str(self.stack_file), "--state-dir", str(self.state)],
                              cwd=ROOT, capture_output=True, text=True, timeout=120)

    def deployment(self) -> dict:
        return json.loads((self.state / "deployment.json").read_text())

    def log(self) -> str:
        return self.output.read_text()


def start(stack_file: Path, state: Path, port: int | None = None, env: dict | None = None) -> LocalRun:
    output = state.parent / f"{state.name}.out"
    run = LocalRun(None, state, stack_file, port or free_port(), free_port(), output)
    with open(output, "wb") as out:
        run.process = subprocess.Popen(run.run_args(), cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env)
    return run


def wait_for_deployment(run: LocalRun, timeout: float = 900) -> dict:
    """deployment.json once written (a fresh machine builds the model environments first)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (run.state / "deployment.json").exists():
            return run.deployment()
        if run.process.poll() is not None:
            raise AssertionError(f"local run exited with {run.process.returncode}:\n{run.log()}")
        time.sleep(0.5)
    raise AssertionError(f"no deployment.json after {timeout} s:\n{run.log()}")


@contextmanager
def served(stack_file: Path, state: Path, env: dict | None = None, timeout: float = 900) -> Iterator[LocalRun]:
    """A local run of `stack_file`, deployed and answering, stopped (SIGTERM, then waited for) on leaving."""
    run = start(stack_file, state, env=env)
    try:
        wait_for_deployment(run, timeout)
        yield run
    finally:
        if run.process.poll() is None:
            run.process.terminate()
            run.process.wait(60)

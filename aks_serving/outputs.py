"""A deployed stack's outputs (__main__.py's exports), read with the Pulumi CLI or from a file.

`pulumi stack output --json --show-secrets` prints every output, secrets in clear (the kubeconfig, the
keys, the token-signing key): they are parsed in memory and never written anywhere by this package.
`--outputs FILE` takes the same JSON, for CI jobs that already hold it (keep such a file 0600).
"""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from aks_serving.errors import CommandError

ROOT = Path(__file__).resolve().parents[1]  # where Pulumi.yaml is, so the CLI finds the project
REQUIRED = ("kubeconfig", "routerNamespace")


def stack_outputs(stack: str | None, outputs_file: Path | None) -> dict:
    outputs = _from_file(outputs_file) if outputs_file else _from_pulumi(stack)
    if missing := [name for name in REQUIRED if not outputs.get(name)]:
        raise CommandError(f"the stack's outputs lack {', '.join(missing)}; has `pulumi up` finished?")
    return outputs


def _from_file(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise CommandError(f"--outputs {path}: {err}") from None


def _from_pulumi(stack: str | None) -> dict:
    pulumi = shutil.which("pulumi")
    if pulumi is None:
        raise CommandError("the Pulumi CLI is not on PATH: install it, or pass the outputs with --outputs FILE "
                           "(`pulumi stack output --json --show-secrets > FILE` where it is)")
    command = [pulumi, "stack", "output", "--json", "--show-secrets"] + (["--stack", stack] if stack else [])
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        raise CommandError(f"`pulumi stack output` failed: {result.stderr.strip() or result.returncode}")
    try:
        return json.loads(result.stdout)
    except ValueError:
        raise CommandError("`pulumi stack output --json` printed no JSON") from None

"""Checks made before anything starts, each naming the service and the file: a run either starts
whole or not at all, and leaves nothing behind."""
from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

from components.config import DeploymentSpec
from local.app_layout import AppLayout

# Runs in the environment's interpreter and loads the entry script as the inference server does: the
# server's package first (it maps `azureml.contrib.services.aml_request` / `aml_response` onto its own
# modules, which is how `rawhttp` scripts import), the app root and source folder on sys.path, the script
# from its path; then init(). The traceback's last line is what the user needs to see.
_INIT_CHECK = """
import importlib.util, os, sys, traceback
try:
    import azureml_inference_server_http.server
except ImportError:
    pass
sys.path += [os.environ["AML_APP_ROOT"], os.environ["AZUREML_SOURCE_DIRECTORY"]]
spec = importlib.util.spec_from_file_location("entry_module", os.environ["AZUREML_ENTRY_SCRIPT"])
module = importlib.util.module_from_spec(spec)
try:
    spec.loader.exec_module(module)
    if not callable(getattr(module, "init", None)) or not callable(getattr(module, "run", None)):
        raise AttributeError("the entry script must define init() and run()")
    module.init()
except BaseException as e:
    print("".join(traceback.format_exception_only(type(e), e)).strip(), file=sys.stderr)
    sys.exit(1)
"""


def ports_in_use(host: str, ports: list[int]) -> list[int]:
    busy = []
    for port in ports:
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError:
                busy.append(port)
    return busy


def init_failure(path: str, spec: DeploymentSpec, python: Path, layout: AppLayout, env: dict[str, str] | None = None,
                 timeout: float = 300) -> str | None:
    """Run the entry script's init() once in its environment; the problem, or None when it works."""
    # HOME as the replica has it: azureml-core reads it on import.
    env = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/"), **layout.env(), **(env or {})}
    try:
        result = subprocess.run([str(python), "-c", _INIT_CHECK], env=env, cwd=layout.source_directory,
                                capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"{path}: init() in {spec.entry_script} did not return within {timeout:g} s"
    if result.returncode == 0:
        return None
    reason = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else f"exit code {result.returncode}"
    return f"{path}: init() in {spec.entry_script} failed: {reason}"

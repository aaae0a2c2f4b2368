"""`images.builder: docker`: build with the local Docker daemon and push, through the docker CLI.

The normalized context tarball (components/build_context.py) goes to `docker build -` on stdin, so a
local build sees exactly the bytes an ACR Tasks build would. The push authenticates with the ACR refresh
token through a throwaway DOCKER_CONFIG (a 0600 file in a 0700 temporary folder, removed after the push):
no `docker login`, nothing left in ~/.docker. Whether a daemon answers is checked before anything is
created (`daemon_problem`), so a machine without Docker fails in one line, not halfway through `up`.
Stdlib only: the RegistryImage provider process imports this module.
"""
from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Mapping, Optional
from urllib.parse import urlsplit

DEFAULT_SOCKET = "unix:///var/run/docker.sock"
PLATFORM = "linux/amd64"
NULL_USER = "00000000-0000-0000-0000-000000000000"  # ACR's user for Entra-exchanged refresh tokens


class DockerBuildError(RuntimeError):
    """`docker build` or `docker push` failed."""


def daemon_address(env: Optional[Mapping[str, str]] = None) -> str:
    """DOCKER_HOST, else the endpoint of the docker CLI's current context (Docker Desktop and Colima are reached
    only through one), else the default socket."""
    env = os.environ if env is None else env
    return env.get("DOCKER_HOST") or _context_host(env) or DEFAULT_SOCKET


def _context_host(env: Mapping[str, str]) -> Optional[str]:
    try:
        done = subprocess.run(["docker", "context", "inspect", "--format", "{{.Endpoints.docker.Host}}"],
                              capture_output=True, text=True, env=dict(env), timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    host = done.stdout.strip()
    return host if done.returncode == 0 and "://" in host else None


def daemon_answers(address: str, timeout: float = 3.0) -> bool:
    """Whether a Docker daemon answers `GET /_ping` at `address` (unix:// or tcp://; tcp with TLS: connects)."""
    parts = urlsplit(address)
    try:
        if parts.scheme == "unix":
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(timeout)
                sock.connect(parts.path)
                sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
                return sock.recv(64).split(b"\r\n", 1)[0].endswith(b" 200 OK")
        if parts.scheme == "tcp" and parts.hostname:
            with socket.create_connection((parts.hostname, parts.port or 2375), timeout=timeout):
                return True
    except OSError:
        return False
    return False  # ssh:// and other transports cannot be checked from here: let the CLI try


def daemon_problem(env: Optional[Mapping[str, str]] = None) -> Optional[str]:
    """One line when `images.builder: docker` cannot work on this machine, else None."""
    env = os.environ if env is None else env
    address = daemon_address(env)
    if urlsplit(address).scheme not in ("unix", "tcp") or daemon_answers(address):
        return None
    # Where the address came from, so the user fixes the right thing (daemon_address's order).
    named_by = ("DOCKER_HOST" if env.get("DOCKER_HOST") else "the default socket; DOCKER_HOST is unset"
                if address == DEFAULT_SOCKET else "the docker CLI's current context; DOCKER_HOST is unset")
    return (f"images.builder: docker builds with a local Docker daemon, and none answers at {address} "
            f"({named_by}); start Docker, or set images.builder to acr-task to build in the registry "
            "with no local Docker")


def build_and_push(image: str, server: str, context: bytes, refresh_token: str) -> None:
    """Build `image` (linux/amd64) from the context tarball and push it to `server`."""
    # The throwaway DOCKER_CONFIG hides the user's contexts and CLI plugins: the daemon is named by address and
    # the user's plugin folder (buildx) is listed in it.
    host = daemon_address()
    with tempfile.TemporaryDirectory(prefix="aks-serving-docker-") as config_dir:
        config = Path(config_dir) / "config.json"
        auth = base64.b64encode(f"{NULL_USER}:{refresh_token}".encode()).decode()
        config.touch(mode=0o600)
        plugins = Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker") / "cli-plugins"
        config.write_text(json.dumps({"auths": {server: {"auth": auth}}, "cliPluginsExtraDirs": [str(plugins)]}))
        env = {**os.environ, "DOCKER_CONFIG": config_dir, "DOCKER_HOST": host}
        _docker(["build", "--platform", PLATFORM, "--tag", image, "-"], env, context)
        _docker(["push", image], env)


def _docker(args: list[str], env: dict, stdin: Optional[bytes] = None) -> None:
    try:
        done = subprocess.run(["docker", *args], input=stdin, capture_output=True, env=env, timeout=3600)
    except FileNotFoundError:
        raise DockerBuildError("images.builder: docker needs the docker CLI on PATH") from None
    if done.returncode != 0:
        tail = "\n".join(done.stderr.decode(errors="replace").strip().splitlines()[-15:])
        raise DockerBuildError(f"docker {args[0]} {args[-1]} failed ({done.returncode}):\n{tail}")

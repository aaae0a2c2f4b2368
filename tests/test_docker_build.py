"""`images.builder: docker` (components/docker_build.py): the daemon check and the docker CLI calls.

Stand-ins: a `docker` script on PATH that records its arguments, its stdin and the DOCKER_CONFIG it was
given (no Docker here); a unix socket on which a thread answers `GET /_ping` as dockerd does.
"""
import base64
import json
import os
import socket
import stat
import threading

import pytest

from components import docker_build

FAKE_DOCKER = """#!/bin/sh
if [ "$1" = context ]; then [ -n "$CONTEXT_HOST" ] && echo "$CONTEXT_HOST"; exit 0; fi
n=$(ls "$RECORD" | grep -c "args$")
echo "$DOCKER_HOST" > "$RECORD/$n.host"
printf '%s\\n' "$@" > "$RECORD/$n.args"
cat > "$RECORD/$n.stdin"
cp "$DOCKER_CONFIG/config.json" "$RECORD/$n.config"
stat -c %a "$DOCKER_CONFIG/config.json" > "$RECORD/$n.mode"
echo "$DOCKER_CONFIG" > "$RECORD/$n.dir"
[ -z "$FAIL" ] || { echo "step 3/9: ERROR: failed to solve: exit code 1" >&2; exit 1; }
"""


@pytest.fixture
def fake_docker(tmp_path, monkeypatch):
    bin_dir, record = tmp_path / "bin", tmp_path / "record"
    bin_dir.mkdir()
    record.mkdir()
    script = bin_dir / "docker"
    script.write_text(FAKE_DOCKER)
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("RECORD", str(record))
    return record


def test_a_build_sends_the_context_on_stdin_and_pushes_with_a_throwaway_0600_config(fake_docker):
    docker_build.build_and_push("r.azurecr.io/aks-serving/router:01", "r.azurecr.io", b"tar.gz bytes", "acr-refresh")
    build, push = ((fake_docker / f"{i}.args").read_text().split() for i in range(2))
    assert build == ["build", "--platform", "linux/amd64", "--tag", "r.azurecr.io/aks-serving/router:01", "-"]
    assert push == ["push", "r.azurecr.io/aks-serving/router:01"]
    assert (fake_docker / "0.stdin").read_bytes() == b"tar.gz bytes"
    config = json.loads((fake_docker / "1.config").read_text())
    auth = base64.b64decode(config["auths"]["r.azurecr.io"]["auth"]).decode()
    assert auth == "00000000-0000-0000-0000-000000000000:acr-refresh"
    assert (fake_docker / "1.mode").read_text().strip() == "600"
    # The throwaway config hides the user's contexts and plugins: the daemon goes by address, buildx by folder.
    assert (fake_docker / "0.host").read_text().strip() == docker_build.DEFAULT_SOCKET
    assert config["cliPluginsExtraDirs"][0].endswith(".docker/cli-plugins")
    assert not os.path.exists((fake_docker / "1.dir").read_text().strip())  # removed after the push


def test_a_failed_build_is_raised_with_the_end_of_its_output_and_nothing_is_pushed(fake_docker, monkeypatch):
    monkeypatch.setenv("FAIL", "1")
    with pytest.raises(docker_build.DockerBuildError, match=r"docker build - failed \(1\):\nstep 3/9: ERROR: failed"):
        docker_build.build_and_push("r.azurecr.io/x:1", "r.azurecr.io", b"ctx", "acr-refresh")
    assert sorted(p.name for p in fake_docker.iterdir() if p.suffix == ".args") == ["0.args"]


def test_the_daemon_check_pings_the_socket_docker_host_names(tmp_path):
    path = tmp_path / "docker.sock"
    assert docker_build.daemon_problem({"DOCKER_HOST": f"unix://{path}"}).startswith(
        f"images.builder: docker builds with a local Docker daemon, and none answers at unix://{path} (DOCKER_HOST)")
    server, thread, asked = answering_daemon(path)
    try:
        assert docker_build.daemon_problem({"DOCKER_HOST": f"unix://{path}"}) is None
    finally:
        thread.join(10)
        server.close()
    assert asked[0].startswith(b"GET /_ping HTTP/1.0") and stat.S_ISSOCK(path.stat().st_mode)


def test_without_docker_host_the_default_socket_is_named():
    problem = docker_build.daemon_problem({})
    if os.path.exists("/var/run/docker.sock"):
        pytest.skip("this machine has a Docker socket")
    assert "none answers at unix:///var/run/docker.sock (the default socket; DOCKER_HOST is unset)" in problem


def answering_daemon(path):
    """A stand-in dockerd on a unix socket: answers one `GET /_ping` with 200, as dockerd does."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)
    server.settimeout(10)

    asked = []  # what the daemon was sent

    def answer():
        conn, _ = server.accept()
        with conn:
            asked.append(conn.recv(1024))
            conn.sendall(b"HTTP/1.0 200 OK\r\n\r\nOK")
    thread = threading.Thread(target=answer)
    thread.start()
    return server, thread, asked


def test_a_daemon_reached_through_the_current_docker_context_is_found_and_built_on(fake_docker, tmp_path,
                                                                                    monkeypatch):
    # Docker Desktop for Linux and Colima: no DOCKER_HOST, no /var/run/docker.sock; the CLI's context names it.
    path = tmp_path / "desktop.sock"
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.setenv("CONTEXT_HOST", f"unix://{path}")
    server, thread, _ = answering_daemon(path)
    try:
        assert docker_build.daemon_problem() is None
    finally:
        thread.join(10)
        server.close()
    docker_build.build_and_push("r.azurecr.io/x:1", "r.azurecr.io", b"ctx", "acr-refresh")
    assert (fake_docker / "0.host").read_text().strip() == f"unix://{path}"


def test_a_current_docker_context_whose_daemon_is_down_is_named_as_the_context_not_docker_host(fake_docker, tmp_path,
                                                                                                monkeypatch):
    # Colima stopped: DOCKER_HOST is unset, the CLI's context still names its socket; nothing listens there.
    path = tmp_path / "colima.sock"
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.setenv("CONTEXT_HOST", f"unix://{path}")
    assert f"none answers at unix://{path} (the docker CLI's current context; DOCKER_HOST is unset)" in \
        docker_build.daemon_problem()

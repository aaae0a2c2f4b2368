"""`make run` end to end: the dev stack served on loopback, called as Azure ML's consumer docs show.

The dev stack is copied with the sentiment service's stable window shortened, so scale-down is seen
within the test.
"""
import json
import math
import os
import signal
import socket
import stat
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from local_stack import dev_config, served, write_stack

DIABETES_ROW = [0.038, 0.051, 0.062, 0.022, -0.044, -0.035, -0.043, -0.003, 0.02, -0.018]


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    folder = tmp_path_factory.mktemp("local")
    config = dev_config()
    config["services"]["sentiment"].update(
        maxRequestWaitTimeMs=20000,
        autoscale={"minReplicas": 1, "maxReplicas": 3, "refreshSeconds": 1, "stableWindowSeconds": 3})
    with served(write_stack(folder / "Pulumi.e2e.yaml", config), folder / "state") as run:
        yield run


def score(uri: str, body: dict, key: str | None, **kwargs) -> requests.Response:
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    return requests.post(uri, data=json.dumps(body), headers=headers, timeout=60, **kwargs)


def ready_replicas(run, service: str) -> float:
    text = requests.get(f"http://127.0.0.1:{run.admin_port}/metrics", timeout=5).text
    for line in text.splitlines():
        if line.startswith(f'router_replicas_ready{{service="{service}"}}'):
            return float(line.split()[-1])
    return 0.0


def token(run, service: str) -> str:
    result = run.cli("token", service)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["accessToken"]


def test_deployment_json_is_private_and_lists_everything(running):
    info = running.deployment()
    assert stat.S_IMODE(os.stat(running.state / "deployment.json").st_mode) == 0o600
    assert set(info["services"]) == {"diabetes", "sentiment"} and set(info["endpoints"]) == {"sentiment-ab"}
    diabetes = info["services"]["diabetes"]
    assert diabetes["auth"] == "key" and diabetes["primaryKey"] != diabetes["secondaryKey"]
    assert diabetes["scoringUri"] == f"http://127.0.0.1:{running.port}/api/v1/service/diabetes/score"
    assert info["services"]["sentiment"]["auth"] == "token" and "primaryKey" not in info["services"]["sentiment"]
    assert info["endpoints"]["sentiment-ab"]["traffic"] == {"v1": 80, "v2": 20}


def test_every_service_scores(running):
    info = running.deployment()
    diabetes = info["services"]["diabetes"]
    answer = score(diabetes["scoringUri"], {"data": [DIABETES_ROW]}, diabetes["primaryKey"])
    assert answer.status_code == 200 and 150 < answer.json()["predictions"][0] < 260
    sentiment = info["services"]["sentiment"]
    answer = score(sentiment["scoringUri"], {"data": ["great service", "rude and slow"]}, token(running, "sentiment"))
    assert answer.status_code == 200 and answer.json()["labels"] == ["positive", "negative"]
    endpoint = info["endpoints"]["sentiment-ab"]
    assert score(endpoint["scoringUri"], {"data": ["fine"]}, endpoint["primaryKey"]).status_code == 200
    swagger = requests.get(diabetes["swaggerUri"], headers={"Authorization": f"Bearer {diabetes['primaryKey']}"},
                           timeout=10)
    assert swagger.status_code == 200 and "paths" in swagger.json()


def test_secondary_key_works_and_a_wrong_key_gets_401(running):
    diabetes = running.deployment()["services"]["diabetes"]
    assert score(diabetes["scoringUri"], {"data": [DIABETES_ROW]}, diabetes["secondaryKey"]).status_code == 200
    refused = score(diabetes["scoringUri"], {"data": [DIABETES_ROW]}, diabetes["primaryKey"] + "x")
    assert refused.status_code == 401 and refused.headers["WWW-Authenticate"].startswith("Bearer")
    assert score(diabetes["scoringUri"], {"data": [DIABETES_ROW]}, None).status_code == 401


def test_unknown_service_is_404(running):
    info = running.deployment()
    uri = info["services"]["diabetes"]["scoringUri"].replace("/diabetes/", "/no-such-model/")
    assert score(uri, {"data": []}, info["services"]["diabetes"]["primaryKey"]).status_code == 404


def test_a_body_over_100_mb_is_refused_before_it_is_sent(running):
    key = running.deployment()["services"]["diabetes"]["primaryKey"]
    with socket.create_connection(("127.0.0.1", running.port), timeout=10) as conn:
        conn.sendall((f"POST /api/v1/service/diabetes/score HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
                      f"Content-Length: {100 * 1024 * 1024 + 1}\r\n\r\n").encode())
        status_line = conn.recv(4096).split(b"\r\n", 1)[0]  # answered with no body byte sent
    assert status_line.startswith(b"HTTP/1.1 413")


def test_endpoint_traffic_split_is_within_binomial_bounds(running):
    endpoint = running.deployment()["endpoints"]["sentiment-ab"]
    n, p = 300, 0.8
    # One caller: each version has one replica taking one request at a time (v1's default), and
    # the split, not the queue, is under test here.
    versions = [score(endpoint["scoringUri"], {"data": ["ok"]}, endpoint["primaryKey"]).json()["version"]
                for _ in range(n)]
    bound = 5 * math.sqrt(n * p * (1 - p))
    assert abs(versions.count("v1") - n * p) <= bound and versions.count("v1") + versions.count("v2") == n


def test_load_scales_the_slow_model_up_then_down_after_the_window(running):
    uri = running.deployment()["services"]["sentiment"]["scoringUri"]
    bearer = token(running, "sentiment")
    # Earlier tests score sentiment too: on a slow machine their load may still hold a second replica.
    assert _back_to_one_replica(running, "sentiment")
    stop_at = time.monotonic() + 40  # bounded load: 6 callers, each request 1.5 s of model time

    def caller(_):
        while time.monotonic() < stop_at and ready_replicas(running, "sentiment") < 2:
            score(uri, {"data": ["slow"], "delayMs": 1500}, bearer)

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(caller, range(6)))
    assert ready_replicas(running, "sentiment") >= 2
    assert _back_to_one_replica(running, "sentiment")  # idle now: back to the minimum after the 3 s window
    status = running.cli("status")
    assert status.returncode == 0, status.stderr
    [row] = [line for line in status.stdout.splitlines() if line.startswith("sentiment ")]
    assert row.split()[1:5] == ["1/1", "ready", "1", "1-3"] and "(down," in row  # the last decision


def _back_to_one_replica(run, service: str, seconds: float = 60) -> bool:
    """Whether `service` is down to its one ready replica within `seconds` (the window is 3 s)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and ready_replicas(run, service) > 1:
        time.sleep(0.5)
    return ready_replicas(run, service) == 1


def _processes() -> list[tuple[int, int, int]]:
    """(pid, parent pid, process group) of every process, from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # ended while we looked
            found.append((int(entry.name), int(fields[1]), int(fields[2])))
    return found


def _group_members(pgid: int) -> list[int]:
    return [pid for pid, _, group in _processes() if group == pgid]


def _children(pid: int) -> list[int]:
    return [child for child, parent, _ in _processes() if parent == pid]


def test_sigterm_stops_everything_and_leaves_no_process(running):
    [router] = _children(running.process.pid)
    assert len(_group_members(router)) >= 5  # the router and its inference-server replicas (gunicorn)
    running.process.send_signal(signal.SIGTERM)
    assert running.process.wait(90) == 0
    assert _group_members(router) == []

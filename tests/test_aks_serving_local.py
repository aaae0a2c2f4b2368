"""`python -m aks_serving ... --local` on the stack `make run` serves: the same verbs as for a deployed stack.

The dev stack runs for real on loopback (the router, the Azure ML inference server); diabetes keeps two
replicas, so its log has two sources.
"""
import contextlib
import json
import queue
import stat
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from local_stack import ROOT, dev_config, served, write_stack

DIABETES_ROW = [0.038, 0.051, 0.062, 0.022, -0.044, -0.035, -0.043, -0.003, 0.02, -0.018]


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    folder = tmp_path_factory.mktemp("local-day2")
    config = dev_config()
    config["services"]["diabetes"]["autoscale"] = {"minReplicas": 2, "maxReplicas": 2}
    with served(write_stack(folder / "Pulumi.e2e.yaml", config), folder / "state") as run:
        yield run


def score(run, key: str) -> int:
    uri = run.deployment()["services"]["diabetes"]["scoringUri"]
    return requests.post(uri, json={"data": [DIABETES_ROW]}, headers={"Authorization": f"Bearer {key}"},
                         timeout=30).status_code


def test_logs_are_each_replicas_own_file_prefixed_by_replica(running):
    assert score(running, running.deployment()["services"]["diabetes"]["primaryKey"]) == 200
    result = running.cli("logs", "diabetes")
    assert result.returncode == 0, result.stderr
    replicas = {line.split("]", 1)[0] + "]" for line in result.stdout.splitlines()}
    assert len(replicas) == 2 and all(r.startswith("[replica-") for r in replicas)
    assert '"POST /score' in result.stdout  # gunicorn's access log line of the call above
    tail = running.cli("logs", "diabetes", "--tail", "1")
    assert len(tail.stdout.splitlines()) == 2  # one line of each replica
    # The replicas' output is no longer in the router's log.
    assert '"POST /score' not in (running.state / "router.log").read_text()
    version = running.cli("logs", "sentiment-ab", "--version", "v2", "--tail", "3")
    assert version.returncode == 0 and not version.stdout.startswith("[")  # one replica: no prefix
    assert "sentiment-ab is an endpoint: pick a version with --version (v1 (default), v2)" in \
        running.cli("logs", "sentiment-ab").stderr


def test_logs_follow_shows_a_request_as_it_is_served(running):
    follower = subprocess.Popen([sys.executable, "-m", "aks_serving", "logs", "diabetes", "--follow", "--tail", "0",
                                 "--local", "--stack", "e2e", "--stack-file", str(running.stack_file),
                                 "--state-dir", str(running.state)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in follower.stdout], daemon=True).start()
    try:
        # A request a second until one's access-log line arrives (the follower may still be starting when the
        # first is served, and --tail 0 skips what was there); bounded in time.
        seen, deadline = [], time.monotonic() + 30
        while not any('"POST /score' in line for line in seen) and time.monotonic() < deadline:
            assert score(running, running.deployment()["services"]["diabetes"]["primaryKey"]) == 200
            with contextlib.suppress(queue.Empty):
                while time.monotonic() < deadline:
                    seen.append(lines.get(timeout=1))
        served = [line for line in seen if '"POST /score' in line]
        assert served and all(line.startswith("[replica-") for line in seen)
    finally:
        follower.kill()
        follower.wait()


def test_status_is_the_make_status_table(running):
    result = running.cli("status")
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.split()[:3] == ["SERVICE", "REPLICAS", "DESIRED"]
    assert next(r for r in rows if r.startswith("diabetes")).split()[1:3] == ["2/2", "ready"]


def test_token_is_accepted_by_the_running_router(running):
    result = running.cli("token", "sentiment")
    assert result.returncode == 0, result.stderr
    token = json.loads(result.stdout)
    assert token["refreshAfter"] < token["expiryOn"]
    uri = running.deployment()["services"]["sentiment"]["scoringUri"]
    answer = requests.post(uri, json={"text": "great"}, timeout=30,
                           headers={"Authorization": f"Bearer {token['accessToken']}"})
    assert answer.status_code != 401


def test_regen_key_swaps_the_key_file_and_deployment_json_and_the_other_key_keeps_working(running):
    before = running.deployment()["services"]["diabetes"]
    old_secondary = before["secondaryKey"]
    with ThreadPoolExecutor(1) as pool:
        rotation = pool.submit(running.cli, "regen-key", "diabetes", "secondary")
        statuses, deadline = [], time.monotonic() + 60  # bounded, whatever happens
        while time.monotonic() < deadline and not rotation.done():
            statuses.append(score(running, before["primaryKey"]))
        settle = time.monotonic() + 1.5  # and while the router re-reads the key files (once a second)
        while time.monotonic() < settle:
            statuses.append(score(running, before["primaryKey"]))
    result = rotation.result()
    assert result.returncode == 0, result.stderr
    assert set(statuses) == {200} and len(statuses) > 5
    after = running.deployment()["services"]["diabetes"]
    assert after["primaryKey"] == before["primaryKey"] and after["secondaryKey"] != old_secondary
    key_file = running.state / "keys" / "diabetes" / "secondary"
    assert key_file.read_text() == after["secondaryKey"] and stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE((running.state / "deployment.json").stat().st_mode) == 0o600
    assert json.loads(running.cli("keys", "diabetes").stdout) == {"primaryKey": after["primaryKey"],
                                                                  "secondaryKey": after["secondaryKey"]}
    deadline = time.monotonic() + 10  # the router re-reads key files at most once a second
    while score(running, old_secondary) != 401 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert score(running, old_secondary) == 401
    assert score(running, after["secondaryKey"]) == 200
    assert score(running, after["primaryKey"]) == 200

"""Autoscaler reaction: from a load step to the scaling decision, and to a new replica serving.

Runs the router with the local backend (real Azure ML inference server replicas on 127.0.0.1) and a
model that takes 1 s per request, at v1's defaults (concurrency 1, target 70 %, refresh 1 s). Each
trial steps from idle to 4 callers and records, from the step: the scale-up decision (the router's
desired replicas rise), a second replica ready, and the first answer from a replica started for the
load. The replica start time alone is printed beside it: it is the floor of "new replica serving".

    .venv/bin/python bench/scaling.py [--trials 3]   (needs .venv-inference: `make venv`)
"""
from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[1]
SCORE_PY = """
import json, os, time
def init():
    pass
def run(raw):
    time.sleep(json.loads(raw).get("seconds", 1))
    return {"pid": os.getpid()}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def metrics(session: aiohttp.ClientSession, admin: str) -> dict[str, float]:
    try:
        async with session.get(f"{admin}/metrics") as response:
            text = await response.text()
    except aiohttp.ClientError:  # the router is still starting
        return {}
    wanted = {"router_replicas_ready", "router_desired_replicas"}
    return {f.name: s.value for f in text_string_to_metric_families(text) if f.name in wanted for s in f.samples}


async def wait_until(session, admin, test, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if test(await metrics(session, admin)):
            return time.monotonic()
        await asyncio.sleep(0.01)
    raise TimeoutError("the router did not get there in time")


async def trial(session: aiohttp.ClientSession, url: str, admin: str, first_pids: set[int]) -> dict[str, float]:
    await wait_until(session, admin, lambda m: m.get("router_replicas_ready") == 1, 120)
    step = time.monotonic()
    stop = step + 20  # bounded load
    first_new = asyncio.get_running_loop().create_future()

    async def caller():
        while time.monotonic() < stop and not first_new.done():
            async with session.post(url, json={"seconds": 1}) as response:
                pid = (await response.json())["pid"]
            if pid not in first_pids and not first_new.done():
                first_new.set_result(time.monotonic())

    callers = [asyncio.ensure_future(caller()) for _ in range(4)]
    decided = await wait_until(session, admin, lambda m: m.get("router_desired_replicas", 1) > 1, 30)
    ready = await wait_until(session, admin, lambda m: m.get("router_replicas_ready", 0) >= 2, 60)
    served = await asyncio.wait_for(first_new, 30)
    await asyncio.gather(*callers)
    return {"decision": decided - step, "ready": ready - step, "served": served - step}


async def replica_start_time(python: str, folder: Path) -> float:
    """How long one inference-server replica takes from process start to answering GET /."""
    port = free_port()
    env = {"AZUREML_ENTRY_SCRIPT": str(folder / "score.py"), "AML_APP_ROOT": str(folder), "PATH": "/usr/bin:/bin"}
    started = time.monotonic()
    process = subprocess.Popen([python, "-m", "gunicorn", "-b", f"127.0.0.1:{port}", "-w", "1",
                                "azureml_inference_server_http.server.entry:app"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        async with aiohttp.ClientSession() as session:
            while time.monotonic() - started < 60:
                try:
                    async with session.get(f"http://127.0.0.1:{port}/") as response:
                        if response.status == 200:
                            return time.monotonic() - started
                except aiohttp.ClientError:
                    await asyncio.sleep(0.01)
        raise TimeoutError("replica did not start")
    finally:
        process.terminate()
        process.wait(30)


async def main(trials: int) -> None:
    python = str(ROOT / ".venv-inference" / "bin" / "python")
    folder = Path(tempfile.mkdtemp(prefix="scaling-bench-"))
    (folder / "score.py").write_text(SCORE_PY)
    port, admin_port = free_port(), free_port()
    config = {"services": {"slow": {
        "auth": {"mode": "none"},
        "backend": {"kind": "local", "entryScript": str(folder / "score.py"), "python": python,
                    "basePort": 15001},
        "requests": {"maxQueueWaitMs": 30000},
        # Scale-down is shortened so trials follow each other; scale-up runs at v1's defaults.
        "autoscale": {"minReplicas": 1, "maxReplicas": 4, "stableWindowSeconds": 3}}},
        "router": {"logRequests": False}}
    (folder / "router.json").write_text(json.dumps(config))
    router = subprocess.Popen([sys.executable, "-m", "router", "serve", "--config", str(folder / "router.json"),
                               "--port", str(port), "--admin-port", str(admin_port)], cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url, admin = f"http://127.0.0.1:{port}/api/v1/service/slow/score", f"http://127.0.0.1:{admin_port}"
    results = []
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
            await wait_until(session, admin, lambda m: m.get("router_replicas_ready") == 1, 120)
            async with session.post(url, json={"seconds": 0}) as response:
                first_pids = {(await response.json())["pid"]}
            for _ in range(trials):
                results.append(await trial(session, url, admin, first_pids))
        start_alone = await replica_start_time(python, folder)
    finally:
        router.terminate()
        router.wait(60)
    print(f"{'trial':<6}{'decision s':>12}{'replica ready s':>17}{'new replica served s':>22}")
    for i, r in enumerate(results, 1):
        print(f"{i:<6}{r['decision']:>12.2f}{r['ready']:>17.2f}{r['served']:>22.2f}")
    median = {k: statistics.median(r[k] for r in results) for k in ("decision", "ready", "served")}
    print(f"{'median':<6}{median['decision']:>12.2f}{median['ready']:>17.2f}{median['served']:>22.2f}")
    print(f"one replica alone starts in {start_alone:.2f} s; decision delay vs v1's refresh period (1 s): "
          f"{median['decision'] / 1.0:.2f} x; ready - decision = {median['ready'] - median['decision']:.2f} s "
          f"({(median['ready'] - median['decision']) / start_alone:.2f} x a lone replica's start)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=3)
    asyncio.run(main(parser.parse_args().trials))

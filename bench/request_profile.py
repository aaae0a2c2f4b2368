"""Where the router's time per request goes: its calls per request under cProfile, and its CPU per request
with features turned off by config, each against the same nginx model on 127.0.0.1.

.venv/bin/python bench/request_profile.py [--seconds 5] [--rounds 3] [--top 30]

Part 1 runs the router under cProfile for `--seconds` of wrk at 16 connections and prints the Python and C
calls per request and the functions with the most own time (cProfile's overhead is per call, so it
over-weights small functions: read the counts, and the shares only roughly). Part 2 runs, side by side and
interleaved, the floor proxy (`floor_proxy.py`, with callbacks only and with a task and a future per
request), the router as benchmarked, and the router without its
request log, without auth, and without both, and prints the median CPU per request of each.
"""
from __future__ import annotations

import argparse
import json
import os
import pstats
import signal
import statistics
import sys
import tempfile
from pathlib import Path

from run import BENCH, KEY, REPO, Stack, cpu_seconds, free_port, wrk, MODEL_BODY

SCORE = "/api/v1/service/echo/score"
VARIANTS = {"router (as benchmarked)": {}, "no request log": {"log": False}, "no auth": {"auth": False},
            "no log, no auth": {"log": False, "auth": False}}


def router_config(workdir: Path, model_port: int, log: bool = True, auth: bool = True) -> Path:
    keys = {"mode": "key", "keyFiles": [str(workdir / "primary"), str(workdir / "secondary")]}
    config = {"services": {"echo": {
        "auth": keys if auth else {"mode": "none"},
        "backend": {"kind": "static", "urls": [f"http://127.0.0.1:{model_port}"]},
        "requests": {"maxConcurrentPerReplica": 64, "maxQueueWaitMs": 500, "scoringTimeoutMs": 60000},
        "autoscale": {"enabled": False}}}, "endpoints": {}, "router": {"logRequests": log}}
    path = workdir / f"router-{int(log)}{int(auth)}.json"
    path.write_text(json.dumps(config))
    return path


def start_router(stack: Stack, config: Path, profile: Path | None = None):
    port, admin = free_port(), free_port()
    prefix = [sys.executable] + (["-m", "cProfile", "-o", str(profile)] if profile else [])
    process = stack.start(prefix + ["-m", "router", "serve", "--config", str(config), "--port", str(port),
                                    "--admin-port", str(admin)], port, stderr=open(os.devnull, "w"))
    return process, port


def calls_per_request(stack: Stack, workdir: Path, model_port: int, seconds: int, top: int) -> None:
    profile = workdir / "router.prof"
    process, port = start_router(stack, router_config(workdir, model_port), profile)
    headers = {"Authorization": f"Bearer {KEY}"}
    requests = wrk(port, SCORE, 16, seconds, headers)["rps"] * seconds
    process.send_signal(signal.SIGTERM)  # `serve` stops cleanly, and cProfile writes its file
    process.wait(60)
    stats = pstats.Stats(str(profile)).stats
    total = sum(own for _, _, own, _, _ in stats.values())
    python = sum(n for (f, _, _), (_, n, _, _, _) in stats.items() if f != "~")
    builtin = sum(n for (f, _, _), (_, n, _, _, _) in stats.items() if f == "~")
    print(f"{requests:.0f} requests: {python / requests:.0f} Python and {builtin / requests:.0f} C calls per request")
    print(f"{'own time':>9} {'calls/req':>9}  function")
    for (file, line, name), (_, n, own, _, _) in sorted(stats.items(), key=lambda kv: -kv[1][2])[:top]:
        where = f"{os.path.relpath(file, REPO)}:{line}" if file != "~" else "C"
        print(f"{own / total * 100:8.1f}% {n / requests:9.2f}  {where} {name}")


def features_off(stack: Stack, workdir: Path, model_port: int, seconds: int, rounds: int) -> None:
    floor_port = free_port()
    floor = stack.start([sys.executable, str(BENCH / "floor_proxy.py"), str(floor_port), str(model_port)], floor_port)
    task_port = free_port()
    floor_task = stack.start([sys.executable, str(BENCH / "floor_proxy.py"), str(task_port), str(model_port), "--task"],
                             task_port)
    targets = {"floor (uvloop+httptools)": (floor.pid, floor_port, "/score"),
               "floor, a task per request": (floor_task.pid, task_port, "/score")}
    for name, variant in VARIANTS.items():
        process, port = start_router(stack, router_config(workdir, model_port, **variant))
        targets[name] = (process.pid, port, SCORE)
    headers = {"Authorization": f"Bearer {KEY}"}
    for _, port, path in targets.values():
        wrk(port, path, 16, 1, headers)  # warm up
    cpu: dict[str, list[float]] = {name: [] for name in targets}
    for _ in range(rounds):
        for name, (pid, port, path) in targets.items():
            before = cpu_seconds(pid)
            result = wrk(port, path, 16, seconds, headers)
            cpu[name].append((cpu_seconds(pid) - before) * 1e6 / (result["rps"] * seconds))
    print(f"\n{'target':26} {'CPU us/request':>14}  (each round)")
    for name, values in cpu.items():
        print(f"{name:26} {statistics.median(values):14.1f}  ({', '.join(f'{v:.1f}' for v in values)})")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="router-profile-"))
    (workdir / "primary").write_text(KEY)
    (workdir / "secondary").write_text("bench-secondary-key")
    stack = Stack(workdir)
    try:
        model_port = free_port()
        stack.nginx("model", MODEL_BODY.format(port=model_port), model_port)
        calls_per_request(stack, workdir, model_port, args.seconds, args.top)
        features_off(stack, workdir, model_port, args.seconds, args.rounds)
    finally:
        stack.stop()


if __name__ == "__main__":
    main()

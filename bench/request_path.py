"""The router's request path in one process, without sockets: what its own code costs per request.

.venv/bin/python bench/request_path.py [--requests 20000] [--rounds 5]      # microseconds per request
.venv/bin/python bench/request_path.py --instructions 2000,6000            # machine instructions per request
.venv/bin/python bench/request_path.py --baseline DIR ...                  # the same for DIR's `router`, beside
.venv/bin/python bench/request_path.py --telemetry                          # and with Application Insights on

The scoring server's connection (`router.http.server.HttpConnection`) and the replica's kept-alive
connection (`router.http.upstream.UpstreamConnection`) are the real ones, on stand-in transports: the
client's request is handed to `data_received` as wrk sends it, the replica's answer (nginx's, as in
`run.py`) comes back on the next turn of the event loop, and the request is done when its answer is
written. Everything between is the router's: routing, key auth, the slot, the deadline timer, the request
head, the exchange, the response, metrics and the JSON log line (written to /dev/null). Without the socket
calls and the other processes, CPU steal is the only noise in the timed mode, and callgrind's instruction
count (`--instructions LOW,HIGH`: two runs, the difference divided by the difference in requests, so
start-up cancels) has none: use it to compare code.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
KEY = "bench-primary-key-0123456789abcdef"
REQUEST = (b"GET /api/v1/service/echo/score HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
           b"Authorization: Bearer " + KEY.encode() + b"\r\n\r\n")
ANSWER = (b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Fri, 04 Dec 2026 02:30:00 GMT\r\n"
          b"Content-Type: application/json\r\nContent-Length: 17\r\nConnection: keep-alive\r\n\r\n"
          b'{"result": [0.5]}')
REPLICA = "http://127.0.0.1:9"


class StandInTransport(asyncio.Transport):
    """Hands what is written to `on_write`; reading and closing are no-ops (nothing is ever slow)."""

    def __init__(self, on_write) -> None:
        super().__init__()
        self._on_write = on_write

    def write(self, data) -> None:
        self._on_write(data)

    def writelines(self, data) -> None:
        self._on_write(b"".join(data))

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def set_write_buffer_limits(self, high=None, low=None) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0

    def can_write_eof(self) -> bool:
        return False


async def run(requests: int) -> float:
    """Serve `requests` requests; the seconds they took."""
    from router.app import Router
    from router.scoring import Scoring
    try:
        from router.http.server import HttpConnection, HttpServer
        from router.http.upstream import UpstreamConnection
    except ImportError:  # a baseline from before router/http/ (issue 17)
        from router.httpserver import HttpConnection, HttpServer
        from router.upstream import UpstreamConnection
    from router.settings import RouterConfig

    workdir = Path(tempfile.mkdtemp(prefix="request-path-"))
    (workdir / "primary").write_text(KEY)
    (workdir / "secondary").write_text("bench-secondary-key")
    echo = {"auth": {"mode": "key", "keyFiles": [str(workdir / "primary"), str(workdir / "secondary")]},
            "backend": {"kind": "static", "urls": [REPLICA]},
            "requests": {"maxConcurrentPerReplica": 64, "maxQueueWaitMs": 500, "scoringTimeoutMs": 60000},
            "autoscale": {"enabled": False}}
    if os.environ.get("APPLICATIONINSIGHTS_CONNECTION_STRING"):  # --telemetry's variant
        echo["appInsights"] = True
    config = RouterConfig.model_validate({"services": {"echo": echo}})
    router = Router(config)
    await router.start()
    router.access_log._stream = open(os.devnull, "w")
    loop = asyncio.get_running_loop()

    replica = router.upstream.connections(REPLICA)
    upstream = UpstreamConnection(replica)
    upstream.connection_made(StandInTransport(lambda data: loop.call_soon(upstream.data_received, ANSWER)))
    replica.put(upstream)  # kept alive: the nginx answer says so, and it goes back after each request

    answered: list[asyncio.Future] = [loop.create_future()]  # the request in progress's answer
    client = HttpConnection(HttpServer(Scoring(router).handle))
    client.connection_made(StandInTransport(lambda data: answered[0].set_result(data)))

    started = time.perf_counter()
    for _ in range(requests):
        answered[0] = loop.create_future()
        client.data_received(REQUEST)
        answer = await answered[0]
    elapsed = time.perf_counter() - started
    if not answer.startswith(b"HTTP/1.1 200 "):
        raise SystemExit(f"the router answered {answer[:200]!r}")
    await router.stop()
    return elapsed


def child(requests: int) -> None:
    import uvloop  # as the router runs (router/__main__.py)
    uvloop.run(_report(requests))


async def _report(requests: int) -> None:
    print(json.dumps({"seconds": await run(requests)}))


def timed(package_dir: Path, requests: int, extra_env: dict | None = None) -> float:
    out = subprocess.run([sys.executable, __file__, "--child", str(requests)], cwd=package_dir,
                         capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(package_dir), **(extra_env or {})})
    if out.returncode != 0:
        raise SystemExit(out.stderr[-2000:])
    return json.loads(out.stdout.splitlines()[-1])["seconds"] / requests * 1e6


def instructions(package_dir: Path, requests: int) -> int:
    out = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, __file__,
                          "--child", str(requests)], cwd=package_dir, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(package_dir)})
    collected = re.search(r"Collected : (\d+)", out.stderr)
    if out.returncode != 0 or collected is None:
        raise SystemExit(f"callgrind run failed:\n{out.stderr[-2000:]}")
    return int(collected.group(1))


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--instructions", help="LOW,HIGH: count instructions under callgrind for two sizes")
    parser.add_argument("--baseline", type=Path, help="a directory holding another `router` package")
    parser.add_argument("--telemetry", action="store_true", help="also time the router with Application Insights "
                        "on (its exporter process posting to bench/ingestion_sink.py)")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    packages = {"router": REPO}
    if args.baseline is not None:
        packages["baseline"] = args.baseline.resolve()
    if args.instructions:
        low, high = map(int, args.instructions.split(","))
        for name, where in packages.items():
            per_request = (instructions(where, high) - instructions(where, low)) / (high - low)
            print(f"{name:9} {per_request:10,.0f} instructions per request")
        return
    variants = {name: (where, None) for name, where in packages.items()}
    sink = None
    if args.telemetry:
        port = _free_port()
        sink = subprocess.Popen([sys.executable, str(BENCH / "ingestion_sink.py"), str(port)])
        time.sleep(0.5)
        variants["telemetry"] = (REPO, {"APPLICATIONINSIGHTS_CONNECTION_STRING": (
            f"InstrumentationKey=00000000-0000-4000-8000-000000000001;IngestionEndpoint=http://127.0.0.1:{port}/")})
    times: dict[str, list[float]] = {name: [] for name in variants}
    try:
        for _ in range(args.rounds):  # interleaved, so all see the same machine
            for name, (where, extra_env) in variants.items():
                times[name].append(timed(where, args.requests, extra_env))
    finally:
        if sink is not None:
            sink.terminate()
            sink.wait(10)
    for name, values in times.items():
        print(f"{name:9} {statistics.median(values):6.1f} us per request (median of {args.rounds}; "
              f"fastest {min(values):.1f})")
    if "telemetry" in times:
        print(f"telemetry on - off: {statistics.median(times['telemetry']) - statistics.median(times['router']):+.1f} "
              "us per request")
    if "baseline" in times:
        print(f"router / baseline: {statistics.median(times['router']) / statistics.median(times['baseline']):.3f}")


if __name__ == "__main__":
    main()

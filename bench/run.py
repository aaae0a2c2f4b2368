"""Router overhead benchmark: nginx (model and reference proxy), the floor of the router's own stack
(uvloop + httptools with no features, `floor_proxy.py`), and the router.

Run from the repository root:  bench/run.sh   (or .venv/bin/python bench/run.py [--seconds 10])

Everything listens on 127.0.0.1. The "model" is nginx answering /score with a fixed JSON body, so the
numbers are the proxies' own cost. Each proxy runs as one process (nginx with one worker) so they are
compared like for like on this 2-core machine; wrk runs with one thread. Nothing is pinned to a core
(pinning the Python proxies to core 0 halved their throughput on this VM). Each figure is the median of
--rounds runs, taken in interleaved order, since this VM's timings vary from run to run (CPU steal).
For the Python proxies it also reports CPU time per request at 16 connections (/proc/<pid>/stat over the
run), which says where a change helps even when steal moves every rps figure.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import statistics
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
KEY = "bench-primary-key-0123456789abcdef"
UPLOAD_BYTES = 50 * 1024 * 1024
FLOOR = "floor (uvloop+httptools)"
TELEMETRY = "router (telemetry on)"

NGINX_CONF = """
worker_processes 1;
daemon off;
pid {dir}/nginx-{name}.pid;
error_log {dir}/nginx-{name}.error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body-{name};
  proxy_temp_path {dir}/proxy-{name};
  fastcgi_temp_path {dir}/fastcgi-{name};
  uwsgi_temp_path {dir}/uwsgi-{name};
  scgi_temp_path {dir}/scgi-{name};
  client_max_body_size 200m;
  keepalive_requests 1000000;
  {body}
}}
"""
MODEL_BODY = """
  server {{
    listen 127.0.0.1:{port};
    location / {{ default_type application/json; return 200 '{{"result": [0.5]}}'; }}
  }}
"""
# nginx's documented defaults for proxy_pass: HTTP/1.0 upstream, a new upstream connection per request
# (as the Azure ML inference server forces anyway: it closes every connection).
PLAIN_PROXY_BODY = """
  server {{
    listen 127.0.0.1:{port};
    location / {{ proxy_pass http://127.0.0.1:{upstream}/score; }}
  }}
"""
# nginx tuned as a fast proxy: kept-alive upstream connections, no buffering.
PROXY_BODY = """
  upstream model {{ server 127.0.0.1:{upstream}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://model/score;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_request_buffering off;
      proxy_buffering off;
    }}
  }}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port: int, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port}")


class Stack:
    """Starts the processes under test and stops exactly those."""

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        self.processes: list[subprocess.Popen] = []

    def start(self, args: list[str], port: int, cwd: Path = REPO, **kwargs) -> subprocess.Popen:
        process = subprocess.Popen(args, cwd=cwd, stdout=subprocess.DEVNULL, **kwargs)
        self.processes.append(process)
        wait_listening(port)
        return process

    def nginx(self, name: str, body: str, port: int) -> subprocess.Popen:
        conf = self.dir / f"nginx-{name}.conf"
        conf.write_text(NGINX_CONF.format(dir=self.dir, name=name, body=body))
        return self.start(["nginx", "-c", str(conf), "-p", str(self.dir), "-e", str(self.dir / f"{name}.err")],
                          port, stderr=subprocess.DEVNULL)

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()


def wrk(port: int, path: str, connections: int, seconds: float, headers: dict[str, str]) -> dict:
    args = ["wrk", "-t1", f"-c{connections}", f"-d{int(seconds)}s", "-s", str(BENCH / "latency.lua")]
    for k, v in headers.items():
        args += ["-H", f"{k}: {v}"]
    run = subprocess.run(args + [f"http://127.0.0.1:{port}{path}"], capture_output=True, text=True,
                         timeout=seconds + 30)
    line = next((text for text in run.stdout.splitlines() if text.startswith("RESULT")), None)
    if line is None:
        raise RuntimeError(f"wrk failed: {run.stdout}{run.stderr}")
    requests, duration, p50, p99, errors = line.split()[1:]
    return {"rps": int(requests) / float(duration), "p50_ms": int(p50) / 1000, "p99_ms": int(p99) / 1000,
            "errors": int(errors)}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of `pid` so far (/proc/<pid>/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def upload_peak_rss_growth(pid: int, port: int, path: str) -> tuple[float, int]:
    """Peak RSS growth (MiB) of `pid` while a 50 MB body streams through it, and the response status."""
    baseline = rss_kib(pid, "VmRSS")
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # reset VmHWM (peak RSS) to the current RSS
    chunk = b"u" * (1 << 20)

    def body():
        for _ in range(UPLOAD_BYTES // len(chunk)):
            yield chunk

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    conn.request("POST", path, body=body(), headers={"Content-Length": str(UPLOAD_BYTES),
                                                    "Authorization": f"Bearer {KEY}"})
    status = conn.getresponse().status
    conn.close()
    return (rss_kib(pid, "VmHWM") - baseline) / 1024, status


def children_cpu_seconds(pid: int) -> float:
    """CPU time of `pid`'s child processes so far (the telemetry router's exporter process)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return sum(cpu_seconds(int(child)) for child in children)


def telemetry_counts(sink_port: int, admin_port: int) -> dict:
    """Items the ingestion sink received, and the telemetry router's own counts by outcome."""
    with urllib.request.urlopen(f"http://127.0.0.1:{sink_port}/count", timeout=10) as answer:
        counts = {"received_by_sink": json.load(answer)["items"]}
    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/metrics", timeout=10) as answer:
        for line in answer.read().decode().splitlines():
            if line.startswith("router_telemetry_items_total{"):
                counts[line.split('"')[1]] = int(float(line.split()[-1]))
    return counts


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline", type=Path, help="a directory holding another `router` package (e.g. "
                        "`git archive HEAD router | tar -x -C DIR`), measured in the same run for comparison")
    parser.add_argument("--telemetry", action="store_true", help="also run the router with Application Insights "
                        "on for the service (to a stand-in ingestion endpoint, bench/ingestion_sink.py)")
    args = parser.parse_args()
    for tool in ("nginx", "wrk"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found: run bench/run.sh, which installs nginx-light and wrk")

    workdir = Path(tempfile.mkdtemp(prefix="router-bench-"))
    stack = Stack(workdir)
    ports = {name: free_port() for name in ("model", "nginx", "nginx_plain", "floor", "router", "admin",
                                            "baseline", "baseline_admin", "sink", "telemetry", "telemetry_admin")}
    keyfile = workdir / "primary"
    keyfile.write_text(KEY)
    (workdir / "secondary").write_text("bench-secondary-key")
    # The example config, with this run's ports and key files.
    config = {"services": {"echo": {
        "auth": {"mode": "key", "keyFiles": [str(keyfile), str(workdir / "secondary")]},
        "backend": {"kind": "static", "urls": [f"http://127.0.0.1:{ports['model']}"]},
        "requests": {"maxConcurrentPerReplica": 64, "maxQueueWaitMs": 500, "scoringTimeoutMs": 60000},
        "autoscale": {"enabled": False}}}, "endpoints": {}}
    (workdir / "router.json").write_text(json.dumps(config))
    router_log = open(workdir / "router.log", "w")
    try:
        stack.nginx("model", MODEL_BODY.format(port=ports["model"]), ports["model"])
        stack.nginx("proxy", PROXY_BODY.format(port=ports["nginx"], upstream=ports["model"]), ports["nginx"])
        stack.nginx("plain", PLAIN_PROXY_BODY.format(port=ports["nginx_plain"], upstream=ports["model"]),
                    ports["nginx_plain"])
        floor = stack.start([sys.executable, str(BENCH / "floor_proxy.py"), str(ports["floor"]), str(ports["model"])],
                            ports["floor"])
        pids = {FLOOR: floor.pid}  # CPU per request is measured for the Python proxies
        router = stack.start([sys.executable, "-m", "router", "serve", "--config", str(workdir / "router.json"),
                              "--port", str(ports["router"]), "--admin-port", str(ports["admin"])],
                             ports["router"], stderr=router_log)
        targets = {"model (nginx, direct)": (ports["model"], "/score"),
                   "nginx proxy": (ports["nginx"], "/score"),
                   "nginx proxy (defaults)": (ports["nginx_plain"], "/score"),
                   FLOOR: (ports["floor"], "/score"),
                   "router": (ports["router"], "/api/v1/service/echo/score")}
        pids["router"] = router.pid
        if args.baseline is not None:
            # `python -m router` imports the package from its working directory.
            baseline = stack.start([sys.executable, "-m", "router", "serve", "--config",
                                    str(workdir / "router.json"), "--port", str(ports["baseline"]),
                                    "--admin-port", str(ports["baseline_admin"])],
                                   ports["baseline"], cwd=args.baseline.resolve(), stderr=subprocess.DEVNULL)
            pids["router (baseline)"] = baseline.pid
            targets["router (baseline)"] = (ports["baseline"], "/api/v1/service/echo/score")
        if args.telemetry:
            stack.start([sys.executable, str(BENCH / "ingestion_sink.py"), str(ports["sink"])], ports["sink"])
            watched = json.loads(json.dumps(config))
            watched["services"]["echo"]["appInsights"] = True
            (workdir / "router-telemetry.json").write_text(json.dumps(watched))
            connection = (f"InstrumentationKey=00000000-0000-4000-8000-000000000001;"
                          f"IngestionEndpoint=http://127.0.0.1:{ports['sink']}/")
            watching = stack.start([sys.executable, "-m", "router", "serve", "--config",
                                    str(workdir / "router-telemetry.json"), "--port", str(ports["telemetry"]),
                                    "--admin-port", str(ports["telemetry_admin"])], ports["telemetry"],
                                   stderr=subprocess.DEVNULL,
                                   env={**os.environ, "APPLICATIONINSIGHTS_CONNECTION_STRING": connection})
            pids[TELEMETRY] = watching.pid
            targets[TELEMETRY] = (ports["telemetry"], "/api/v1/service/echo/score")
        headers = {"Authorization": f"Bearer {KEY}"}
        runs: dict[str, dict[str, list[dict]]] = {name: {"c16": [], "c1": []} for name in targets}
        for port, path in targets.values():
            wrk(port, path, 16, 2, headers)  # warm up
        for _ in range(args.rounds):
            for name, (port, path) in targets.items():
                cpu_before = cpu_seconds(pids[name]) if name in pids else 0.0
                exporter_before = children_cpu_seconds(pids[name]) if name == TELEMETRY else 0.0
                result = wrk(port, path, 16, args.seconds, headers)
                if name in pids:  # the process's CPU time over the run, per request answered
                    result["cpu_us_per_request"] = (cpu_seconds(pids[name]) - cpu_before) * 1e6 / (
                        result["rps"] * args.seconds)
                if name == TELEMETRY:  # and its exporter process's, apart
                    result["exporter_cpu_us_per_request"] = (children_cpu_seconds(pids[name]) - exporter_before) * \
                        1e6 / (result["rps"] * args.seconds)
                runs[name]["c16"].append(result)
                runs[name]["c1"].append(wrk(port, path, 1, args.seconds, headers))
        results = {name: {c: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for c, rs in by_c.items()}
                   for name, by_c in runs.items()}
        growth, status = upload_peak_rss_growth(router.pid, ports["router"], "/api/v1/service/echo/score")
        if args.telemetry:
            time.sleep(3)  # the last batches reach the sink
            counts = telemetry_counts(ports["sink"], ports["telemetry_admin"])
    finally:
        stack.stop()
        router_log.close()

    print(f"{'target':24} {'rps@16':>9} {'p50@1 ms':>9} {'p99@16 ms':>10} {'errors':>7}")
    for name, r in results.items():
        print(f"{name:24} {r['c16']['rps']:9.0f} {r['c1']['p50_ms']:9.3f} {r['c16']['p99_ms']:10.3f} "
              f"{r['c16']['errors'] + r['c1']['errors']:7.0f}")
    direct, nginx = results["model (nginx, direct)"], results["nginx proxy"]
    plain = results["nginx proxy (defaults)"]
    summary = {}
    for name in [n for n in (FLOOR, "router (baseline)", "router", TELEMETRY) if n in results]:
        r = results[name]
        summary[name] = {"rps_ratio_to_nginx": round(r["c16"]["rps"] / nginx["c16"]["rps"], 3),
                         "rps_ratio_to_nginx_defaults": round(r["c16"]["rps"] / plain["c16"]["rps"], 3),
                         "added_p50_ms_at_1": round(r["c1"]["p50_ms"] - direct["c1"]["p50_ms"], 3),
                         "p99_ms_at_16": r["c16"]["p99_ms"],
                         "cpu_us_per_request_at_16": round(r["c16"]["cpu_us_per_request"], 1),
                         # Beside Azure ML v2's inference router, documented at about 2,500 requests per vCPU.
                         "requests_per_core": round(1e6 / r["c16"]["cpu_us_per_request"])}
    if TELEMETRY in results:
        on, off = results[TELEMETRY], results["router"]
        summary[TELEMETRY]["added_p50_ms_at_1_over_router"] = round(on["c1"]["p50_ms"] - off["c1"]["p50_ms"], 3)
        summary[TELEMETRY]["exporter_cpu_us_per_request_at_16"] = round(on["c16"]["exporter_cpu_us_per_request"], 1)
        summary[TELEMETRY]["items"] = counts
    summary["router"]["upload_50MB_status"] = status
    summary["router"]["upload_50MB_peak_rss_growth_MiB"] = round(growth, 1)
    goals = {"rps_ratio_to_nginx >= 0.5": summary["router"]["rps_ratio_to_nginx"] >= 0.5,
             "added_p50_ms_at_1 <= 0.2": summary["router"]["added_p50_ms_at_1"] <= 0.2,
             "p99_ms_at_16 <= 3": summary["router"]["p99_ms_at_16"] <= 3,
             "upload peak RSS growth <= 10 MiB": growth <= 10}
    if TELEMETRY in summary:
        goals["telemetry on: added p50 at 1 <= 0.05 ms over off"] = \
            summary[TELEMETRY]["added_p50_ms_at_1_over_router"] <= 0.05
    print(json.dumps({"summary": summary, "goals_met": goals}, indent=2))
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()

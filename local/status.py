"""`make status`: the running stack's services, live, refreshed in place on a terminal."""
from __future__ import annotations

import json
import sys
import time
import urllib.request

HEADER = ("SERVICE", "REPLICAS", "DESIRED", "MIN-MAX", "UTIL %", "IN FLIGHT", "QUEUED", "LAST SCALING")


def render(status: dict, now: float) -> str:
    rows = [HEADER] + [_row(name, s, now) for name, s in sorted(status.items())]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def _row(name: str, s: dict, now: float) -> tuple[str, ...]:
    r, last = s["replicas"], s["lastScale"]
    bounds = f"{r['min']}-{r['max']}" if r["min"] is not None else "fixed"
    scaled = (f"{last['from']} -> {last['to']} ({last['reason']}, {last['utilization']:g} %) {now - last['at']:.0f} s ago"
              if last else "-")
    def shown(value):
        return "-" if value is None else f"{value:g}" if isinstance(value, float) else str(value)
    return (name, f"{r['ready']}/{r['current']} ready", shown(r["desired"]), bounds, shown(s["utilization"]),
            str(s["inFlight"]), str(s["queued"]), scaled)


def fetch(admin_url: str) -> dict:
    with urllib.request.urlopen(f"{admin_url}/status", timeout=5) as response:
        return json.loads(response.read())


def watch(deployment, once: bool = False, interval: float = 1.0) -> int:
    info_file = deployment.state / "deployment.json"
    if not info_file.exists():
        print(f"{deployment.stack} is not running here (no {info_file}); start it with `make run`", file=sys.stderr)
        return 1
    admin = json.loads(info_file.read_text())["admin"]
    live = sys.stdout.isatty() and not once
    try:
        while True:
            try:
                screen = render(fetch(admin), time.time())
            except OSError as err:
                print(f"cannot reach the router's admin port {admin}: {err}", file=sys.stderr)
                return 1
            # Home the cursor and clear: the table is redrawn in place instead of scrolling.
            print(("\x1b[H\x1b[2J" if live else "") + screen, flush=True)
            if not live:
                return 0
            time.sleep(interval)
    except KeyboardInterrupt:
        return 0

"""The router's admin /status as `make status`'s table (aks_serving/status.py draws it, live or once)."""
from __future__ import annotations

import json
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

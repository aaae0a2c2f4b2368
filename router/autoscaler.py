"""Per-service autoscaler: v1's utilization rule, eager up, held down, within min/max.

utilization = (in flight + queued) / (replicas x per-replica concurrency). Above target: scale up at once
to the replicas that bring it to target. Below: scale down only after it stayed below for the stable
window, and only to the largest need seen in that window, so a short lull does not drop replicas that
the next burst needs. The decision is pure (`Autoscaler.decide`, injectable clock); `AutoscalerLoop`
applies it on a schedule, away from the request path.
"""
from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections import deque
from dataclasses import dataclass
from typing import Awaitable, Callable

from .settings import Autoscale

log = logging.getLogger("router.autoscaler")


def replicas_for_rps(rps: float, seconds_per_request: float, target_percent: float, concurrency: int) -> int:
    """v1's sizing formula: ceil(rps x seconds per request / target utilization / concurrency)."""
    return _ceil(rps * seconds_per_request / (target_percent / 100) / concurrency)


def _ceil(x: float) -> int:
    # 7 / 0.7 is 10.000000000000002 in binary floating point; that must need 10 replicas, not 11.
    return math.ceil(round(x, 9))


@dataclass(frozen=True)
class Decision:
    current: int
    desired: int
    utilization: float  # percent
    reason: str  # up | down | hold | bounds | steady


class Autoscaler:
    def __init__(self, config: Autoscale, concurrency: int, clock: Callable[[], float] = time.monotonic):
        self.config = config
        self.concurrency = concurrency
        self.clock = clock
        self._needs: deque[tuple[float, int]] = deque()  # (time, replicas needed) within the window
        self._below_since: float | None = None
        self.last: Decision | None = None  # the latest reading, for /status
        self.last_scale: tuple[float, Decision] | None = None  # (unix time, decision) of the latest change

    def needed(self, load: float) -> int:
        c = self.config
        raw = _ceil(load / (self.concurrency * c.target_utilization / 100))
        return min(c.max_replicas, max(c.min_replicas, raw))

    def decide(self, load: float, current: int) -> Decision:
        self.last = self._decide(load, current)
        return self.last

    def take_leadership(self) -> None:
        """This pod just became the leader: forget what it saw before (it was not deciding, or it led
        earlier and its window is stale). The window starts now, so scale-down waits a full stable window
        of this leader's own readings; scale-up stays immediate."""
        self._needs.clear()
        self._below_since = None  # set again only by a reading from now on

    def _decide(self, load: float, current: int) -> Decision:
        c, now = self.config, self.clock()
        capacity = current * self.concurrency
        utilization = 100.0 * load / capacity if capacity else (math.inf if load else 0.0)
        need = self.needed(load)
        self._remember(now, need)
        if current < c.min_replicas or current > c.max_replicas:
            self._below_since = None
            return Decision(current, min(c.max_replicas, max(c.min_replicas, current)), utilization, "bounds")
        if need > current:
            self._below_since = None
            return Decision(current, need, utilization, "up")
        if need == current:
            self._below_since = None
            return Decision(current, current, utilization, "steady")
        if self._below_since is None:
            self._below_since = now
        if now - self._below_since < c.stable_window_seconds:
            return Decision(current, current, utilization, "hold")
        peak = max(n for t, n in self._needs if t >= self._below_since)
        self._below_since = now  # a further step down waits for another full window
        return Decision(current, peak, utilization, "down")

    def _remember(self, now: float, need: int) -> None:
        self._needs.append((now, need))
        horizon = now - self.config.stable_window_seconds
        while self._needs and self._needs[0][0] < horizon:
            self._needs.popleft()


class AutoscalerLoop:
    """Every refresh period: read the load, decide, and (on the leader only) scale the backend."""

    def __init__(self, service: str, autoscaler: Autoscaler, load: Callable[[], Awaitable[float]],
                 current_replicas: Callable[[], Awaitable[int]], scale: Callable[[int], Awaitable[None]],
                 is_leader: Callable[[], bool] = lambda: True, metrics=None) -> None:
        self.service = service
        self.autoscaler = autoscaler
        self._load, self._current, self._scale = load, current_replicas, scale
        self._is_leader = is_leader
        self._metrics = metrics
        self._leading = False  # whether the previous tick found this pod leading

    async def tick(self) -> Decision | None:
        if not self._is_leader():
            self._leading = False
            return None
        if not self._leading:
            self._leading = True
            self.autoscaler.take_leadership()
        decision = self.autoscaler.decide(await self._load(), await self._current())
        if self._metrics is not None:
            self._metrics.utilization.labels(self.service).set(min(decision.utilization, 1e6))
            self._metrics.desired_replicas.labels(self.service).set(decision.desired)
        if decision.desired != decision.current:
            # Counted and logged when made: applying it (starting or draining replicas) takes a while.
            direction = "up" if decision.desired > decision.current else "down"
            self.autoscaler.last_scale = (time.time(), decision)
            if self._metrics is not None:
                self._metrics.scale_decisions.labels(self.service, direction).inc()
            log.info(json.dumps({"event": "scale", "service": self.service, "from": decision.current,
                                 "to": decision.desired, "reason": decision.reason,
                                 "utilization": round(decision.utilization, 1)}))
            await self._scale(decision.desired)
        return decision

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.autoscaler.config.refresh_seconds)
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:  # a failed API call must not stop autoscaling for good
                log.exception("service %s: autoscaler tick failed", self.service)

"""The scoring deadlines of a service's requests, on one timer.

A timer per request (`loop.call_later`, then `cancel` when the replica answers) was about 5 % of the
request path: uvloop makes a handle, starts a libuv timer, and closes it again on a later turn of the loop.
Here a request joins a dict when it is sent and leaves it when answered, and one timer is armed for the
earliest deadline. When it fires it expires every request due and is armed again for the earliest left.
A service's requests share one timeout counted from their start, so that timer is rarely re-armed: it
fires about once per timeout while requests come and go.
"""
from __future__ import annotations

import asyncio
from typing import Protocol

from .clock import monotonic

EARLY = 0.001  # uvloop rounds a timer to milliseconds: a request this close to its deadline is due


class Expiring(Protocol):
    """What `Deadlines` holds: a deadline (`clock.monotonic` time) and what to do when it passes."""

    deadline: float

    def time_out(self) -> None: ...


class Deadlines:
    def __init__(self) -> None:
        self._waiting: dict[Expiring, None] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._armed_for = 0.0

    def __len__(self) -> int:
        return len(self._waiting)

    def add(self, item: Expiring, deadline: float, loop: asyncio.AbstractEventLoop) -> None:
        """`deadline` is `item.deadline` (passed, so the request path reads no attribute of a protocol)."""
        self._waiting[item] = None
        if self._timer is None or deadline < self._armed_for:  # the second: only if the timeout changed
            self._arm(deadline, loop)

    def remove(self, item: Expiring) -> None:
        """`item` was answered (or left) in time. The timer stays: when it fires it finds the next deadline."""
        self._waiting.pop(item, None)

    def _arm(self, deadline: float, loop: asyncio.AbstractEventLoop) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._armed_for = deadline
        self._timer = loop.call_later(max(0.0, deadline - monotonic()), self._fire, loop)

    def _fire(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        due = monotonic() + EARLY
        expired: list[Expiring] = []
        earliest = float("inf")
        for item in self._waiting:  # those in flight: a few thousand at most, about once per timeout
            if item.deadline <= due:
                expired.append(item)
            elif item.deadline < earliest:
                earliest = item.deadline
        for item in expired:
            del self._waiting[item]
        if self._waiting:
            self._arm(earliest, loop)
        for item in expired:  # last: what they do may add or remove others
            item.time_out()

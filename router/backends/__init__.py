"""Where a service's replicas come from, and how their number is changed.

A backend feeds replica URLs into the service's ReplicaPool (`pool.set_replicas`) and, if it can scale,
reports and sets the replica count for the autoscaler.
"""
from __future__ import annotations

from typing import Protocol

from ..pool import ReplicaPool


class Backend(Protocol):
    can_scale: bool

    async def start(self, pool: ReplicaPool) -> None:
        """Begin feeding replicas into `pool`; returns once the first set is known."""

    async def stop(self) -> None:
        """Stop watching (and, for processes the backend owns, stop them)."""

    async def current_replicas(self) -> int: ...

    async def scale(self, replicas: int) -> None: ...

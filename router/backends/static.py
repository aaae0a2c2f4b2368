"""Fixed replica URLs: for tests, benchmarks and models served elsewhere. It never scales."""
from __future__ import annotations

from ..pool import ReplicaPool
from ..settings import StaticBackend


class StaticReplicas:
    can_scale = False

    def __init__(self, config: StaticBackend) -> None:
        self.urls = list(config.urls)

    async def start(self, pool: ReplicaPool) -> None:
        pool.set_replicas(self.urls)

    async def stop(self) -> None:
        pass

    async def current_replicas(self) -> int:
        return len(self.urls)

    async def scale(self, replicas: int) -> None:
        raise RuntimeError("a static backend cannot scale")

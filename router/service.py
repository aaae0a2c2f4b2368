"""Runtime objects behind the routes: a service (pool, auth, backend) and an endpoint (traffic split)."""
from __future__ import annotations

import bisect
import random

from .auth import Authenticator, build_authenticator
from .jwks import KeySets
from .autoscaler import Autoscaler
from .backends import Backend
from .deadlines import Deadlines
from .pool import Prober, ReplicaPool
from .settings import EndpointConfig, ServiceConfig


class Service:
    def __init__(self, name: str, config: ServiceConfig, backend: Backend, prober: Prober | None,
                 probe_interval: float, key_sets: KeySets | None = None) -> None:
        self.name = name
        self.config = config
        self.backend = backend
        self.auth: Authenticator = build_authenticator(config.auth, key_sets)
        self.pool = ReplicaPool(name, config.requests.max_concurrent_per_replica, prober, probe_interval)
        limits = config.requests
        self.queue_wait = limits.max_queue_wait_ms / 1000
        self.scoring_timeout = limits.scoring_timeout_ms / 1000
        self.replica_timeout = (limits.replica_timeout_ms or limits.scoring_timeout_ms) / 1000
        self.max_body = limits.max_body_bytes
        self.deadlines = Deadlines()  # of its requests forwarded in callbacks
        scales = config.autoscale.enabled and backend.can_scale
        self.autoscaler = Autoscaler(config.autoscale, limits.max_concurrent_per_replica) if scales else None

    def load(self) -> int:
        """This pod's share of the utilization numerator: requests holding a slot plus those queued."""
        return self.pool.in_flight + self.pool.queued


class Endpoint:
    """Picks a version by traffic share; `azureml-model-deployment: <version>` pins one."""

    def __init__(self, name: str, config: EndpointConfig, services: dict[str, Service],
                 rng: random.Random | None = None, key_sets: KeySets | None = None) -> None:
        self.name = name
        self.auth: Authenticator = build_authenticator(config.auth, key_sets)
        self.versions = {v: services[spec.service] for v, spec in config.versions.items()}
        shares = [(v, s) for v, s in config.traffic_shares().items() if s > 0]
        self._names = [v for v, _ in shares]
        self._bounds: list[float] = []
        total = 0.0
        for _, share in shares:
            total += share
            self._bounds.append(total)
        self._rng = rng or random.Random()

    def pick(self, pinned: str | None = None) -> tuple[str, Service] | None:
        if pinned:
            service = self.versions.get(pinned)
            return (pinned, service) if service else None
        i = bisect.bisect_right(self._bounds, self._rng.random() * self._bounds[-1])
        name = self._names[min(i, len(self._names) - 1)]
        return name, self.versions[name]

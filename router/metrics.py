"""Prometheus metrics, in a registry of their own so tests can build several routers in one process."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("router_requests", "Scoring requests answered",
                                ["service", "status"], registry=r)
        self.latency = Histogram("router_request_seconds", "Time to response headers",
                                 ["service"], registry=r,
                                 buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60))
        self.in_flight = Gauge("router_in_flight", "Requests holding a replica slot (this pod)",
                               ["service"], registry=r)
        self.queued = Gauge("router_queued", "Requests waiting for a slot (this pod)", ["service"], registry=r)
        self.replicas_ready = Gauge("router_replicas_ready", "Replicas taking requests", ["service"],
                                    registry=r)
        self.retries = Counter("router_retries",
                               "Requests sent again (a refused connection, or a kept-alive one the replica closed)",
                               ["service"], registry=r)
        self.ejections = Counter("router_ejections", "Replicas taken out after refusing connections",
                                 ["service"], registry=r)
        self.scale_decisions = Counter("router_scale_decisions", "Autoscaler decisions that changed replicas",
                                       ["service", "direction"], registry=r)
        self.desired_replicas = Gauge("router_desired_replicas", "Autoscaler's desired replicas",
                                      ["service"], registry=r)
        self.utilization = Gauge("router_utilization_percent", "Autoscaler's last utilization reading",
                                 ["service"], registry=r)
        self.auth_failures = Counter("router_auth_failures", "Requests refused with 401", ["service"],
                                     registry=r)


class ServiceMetrics:
    """One service's metric children, looked up once: a `labels()` call per request cost ~2 % of it."""

    __slots__ = ("_metrics", "_service", "latency", "retries", "auth_failures", "_requests")

    def __init__(self, metrics: Metrics, service: str) -> None:
        self._metrics, self._service = metrics, service
        self.latency = metrics.latency.labels(service)
        self.retries = metrics.retries.labels(service)
        self.auth_failures = metrics.auth_failures.labels(service)
        self._requests: dict[int, object] = {}

    def answered(self, status: int, seconds: float) -> None:
        counter = self._requests.get(status)
        if counter is None:
            counter = self._requests[status] = self._metrics.requests.labels(self._service, str(status))
        counter.inc()
        self.latency.observe(seconds)

"""Prometheus metrics, in a registry of their own so tests can build several routers in one process.

The request path only adds to plain numbers (`ServiceMetrics`); a collector turns them into
`router_requests_total`, `router_request_seconds`, `router_retries_total` and `router_auth_failures_total`
when Prometheus scrapes. prometheus_client's own Counter and Histogram take a lock and make several calls
per update, about 2 % of a request each; the router updates them from its one event-loop thread only.
"""
from __future__ import annotations

from bisect import bisect_left
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.utils import floatToGoString

# A list of floats: compiled, a Final tuple of literals is built afresh (its floats boxed) at every use.
LATENCY_BUCKETS: Final = [.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.services: dict[str, ServiceMetrics] = {}
        r.register(_RequestPathCollector(self.services))
        self.in_flight = Gauge("router_in_flight", "Requests holding a replica slot (this pod)",
                               ["service"], registry=r)
        self.queued = Gauge("router_queued", "Requests waiting for a slot (this pod)", ["service"], registry=r)
        self.replicas_ready = Gauge("router_replicas_ready", "Replicas taking requests", ["service"],
                                    registry=r)
        self.ejections = Counter("router_ejections", "Replicas taken out after refusing connections",
                                 ["service"], registry=r)
        self.scale_decisions = Counter("router_scale_decisions", "Autoscaler decisions that changed replicas",
                                       ["service", "direction"], registry=r)
        self.desired_replicas = Gauge("router_desired_replicas", "Autoscaler's desired replicas",
                                      ["service"], registry=r)
        self.utilization = Gauge("router_utilization_percent", "Autoscaler's last utilization reading",
                                 ["service"], registry=r)

    def service(self, name: str) -> "ServiceMetrics":
        """A service's counts, registered for scraping."""
        self.services[name] = ServiceMetrics()
        return self.services[name]


class ServiceMetrics:
    """One service's request counts, added to on the request path (one event-loop thread, no lock)."""

    __slots__ = ("requests", "buckets", "seconds", "retries", "auth_failures", "in_callbacks")

    def __init__(self) -> None:
        self.requests: dict[int, int] = {}  # status -> answers
        self.buckets = [0] * (len(LATENCY_BUCKETS) + 1)  # per bucket (not cumulative); the last is +Inf
        self.seconds = 0.0
        self.retries = 0
        self.auth_failures = 0
        self.in_callbacks = 0  # forwarded without a task (router/callback_forward.py)

    def answered(self, status: int, seconds: float) -> None:
        requests = self.requests
        requests[status] = requests.get(status, 0) + 1
        self.buckets[bisect_left(LATENCY_BUCKETS, seconds)] += 1  # the first bound >= seconds, as `le` means
        self.seconds += seconds

    def retried(self) -> None:
        self.retries += 1


class _RequestPathCollector:
    """Reads every service's ServiceMetrics at scrape time."""

    def __init__(self, services: dict[str, ServiceMetrics]) -> None:
        self._services = services

    def collect(self):
        requests = CounterMetricFamily("router_requests", "Scoring requests answered", labels=["service", "status"])
        latency = HistogramMetricFamily("router_request_seconds", "Time to response headers", labels=["service"])
        retries = CounterMetricFamily("router_retries",
                                      "Requests sent again (refused, or reset before the request was written)",
                                      labels=["service"])
        auth_failures = CounterMetricFamily("router_auth_failures", "Requests refused with 401", labels=["service"])
        in_callbacks = CounterMetricFamily(
            "router_requests_in_callbacks", "Requests forwarded in callbacks, without a task (body whole, a free "
            "slot, an idle kept-alive replica connection)", labels=["service"])
        for name, m in self._services.items():
            for status, count in sorted(m.requests.items()):
                requests.add_metric([name, str(status)], count)
            cumulative, buckets = 0, []
            for bound, count in zip((*map(floatToGoString, LATENCY_BUCKETS), "+Inf"), m.buckets):
                cumulative += count
                buckets.append((bound, cumulative))
            latency.add_metric([name], buckets, m.seconds)
            retries.add_metric([name], m.retries)
            auth_failures.add_metric([name], m.auth_failures)
            in_callbacks.add_metric([name], m.in_callbacks)
        yield from (requests, latency, retries, auth_failures, in_callbacks)

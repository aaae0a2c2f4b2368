"""The router's state (services, endpoints, upstream client, metrics, log), its lifecycle, and the admin
app (aiohttp; in-cluster only). The scoring port is served by `scoring.Scoring` on `http.server.HttpServer`."""
from __future__ import annotations

import asyncio
import logging

import aiohttp
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .accesslog import AccessLog
from .autoscaler import AutoscalerLoop
from .backends.factory import build_backend
from .jwks import KeySets
from .metrics import Metrics, ServiceMetrics
from .service import Endpoint, Service
from .settings import RouterConfig
from .status import status_document
from .telemetry import TelemetryCollector, from_environment as telemetry_from_environment
from .http.upstream import UpstreamClient
from .proxy import DROP_RESPONSE_HEADERS

log = logging.getLogger("router")
PROBE_TIMEOUT = aiohttp.ClientTimeout(total=2)


class Router:
    def __init__(self, config: RouterConfig, cluster=None) -> None:
        self.config = config
        self.cluster = cluster  # backends.kubernetes.Cluster when running in Kubernetes
        self.metrics = Metrics()
        self.access_log = AccessLog()
        # Application Insights request items, for the services that ask for them (None: none does).
        self.telemetry = telemetry_from_environment([n for n, s in config.services.items() if s.app_insights])
        if self.telemetry is not None:
            self.metrics.registry.register(TelemetryCollector(self.telemetry))
        self.session: aiohttp.ClientSession | None = None  # probes (the request path uses self.upstream)
        self.upstream = UpstreamClient(DROP_RESPONSE_HEADERS)
        self.ready = False
        opts = config.router
        key_sets = KeySets()  # services that trust one token issuer share its published keys
        self.services = {
            name: Service(name, svc, build_backend(name, svc, cluster), self._probe, opts.probe_interval_seconds,
                          key_sets)
            for name, svc in config.services.items()}
        self.endpoints = {name: Endpoint(name, ep, self.services, key_sets=key_sets)
                          for name, ep in config.endpoints.items()}
        self._tasks: list[asyncio.Task] = []
        self.service_metrics: dict[str, ServiceMetrics] = {}
        for service in self.services.values():
            self._export_pool_gauges(service)

    # ---- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=5))
        if self.telemetry is not None:
            await self.telemetry.start()  # its exporter process
        if self.cluster is not None:
            await self.cluster.start(self)
        for service in self.services.values():
            await service.backend.start(service.pool)
            if service.autoscaler is not None:
                self._tasks.append(asyncio.get_running_loop().create_task(self._autoscaler_loop(service).run()))
        self.ready = True

    async def stop(self) -> None:
        self.ready = False
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for service in self.services.values():
            service.pool.close()
            await service.backend.stop()
        if self.cluster is not None:
            await self.cluster.stop()
        self.upstream.close()
        if self.session is not None:
            await self.session.close()
        self.access_log.flush()
        if self.telemetry is not None:
            await self.telemetry.stop()  # the last batch goes out

    def _autoscaler_loop(self, service: Service) -> AutoscalerLoop:
        async def load() -> float:
            if self.cluster is None:
                return service.load()
            return service.load() + await self.cluster.peer_load(service.name)

        is_leader = (lambda: self.cluster.is_leader) if self.cluster is not None else (lambda: True)
        return AutoscalerLoop(service.name, service.autoscaler, load, service.backend.current_replicas,
                              service.backend.scale, is_leader, self.metrics)

    async def _probe(self, url: str) -> bool:
        try:
            async with self.session.get(url + "/", timeout=PROBE_TIMEOUT) as resp:
                return resp.status == 200
        except (aiohttp.ClientError, asyncio.TimeoutError):
            return False

    def _export_pool_gauges(self, service: Service) -> None:
        # Read at scrape time, so the request path never touches a gauge.
        m, pool = self.metrics, service.pool
        m.in_flight.labels(service.name).set_function(lambda: pool.in_flight)
        m.queued.labels(service.name).set_function(lambda: pool.queued)
        m.replicas_ready.labels(service.name).set_function(lambda: pool.ready)
        self.service_metrics[service.name] = m.service(service.name)
        pool.on_eject = lambda replica: m.ejections.labels(service.name).inc()

    # ---- admin app -----------------------------------------------------------------------------

    def admin_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/metrics", self.metrics_page)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_get("/peer/load", self.peer_load)
        app.router.add_get("/status", self.status)
        return app

    async def metrics_page(self, request: web.Request) -> web.Response:
        body = generate_latest(self.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def readyz(self, request: web.Request) -> web.Response:
        return web.Response(text="ready") if self.ready else web.Response(status=503, text="not ready")

    async def status(self, request: web.Request) -> web.Response:
        """Replicas, load and the last scaling decision per service (what `make status` shows)."""
        return web.json_response(await status_document(self.services))

    async def peer_load(self, request: web.Request) -> web.Response:
        """This pod's counts, which the leader sums across router pods before deciding."""
        return web.json_response({name: s.load() for name, s in self.services.items()})


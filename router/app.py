"""The router's two aiohttp applications: scoring (public) and admin (in-cluster only)."""
from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time

import aiohttp
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .accesslog import AccessLog, request_line
from .autoscaler import AutoscalerLoop
from .backends.factory import build_backend
from .metrics import Metrics, ServiceMetrics
from .proxy import Attempt, ProxyError, forward
from .service import Endpoint, Service
from .settings import RouterConfig
from .status import status_document
from .upstream import UpstreamClient

log = logging.getLogger("router")
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")  # anything else is replaced: it goes into logs
VERSION_HEADER = "azureml-model-deployment"
PROBE_TIMEOUT = aiohttp.ClientTimeout(total=2)
# aiohttp's server options for the scoring app. Bodies pass through as the client sent them: a gzip body
# must reach the replica still gzipped, with its Content-Encoding and Content-Length still true.
SCORING_SERVER_OPTIONS = {"auto_decompress": False}


class Router:
    def __init__(self, config: RouterConfig, cluster=None) -> None:
        self.config = config
        self.cluster = cluster  # backends.kubernetes.Cluster when running in Kubernetes
        self.metrics = Metrics()
        self.access_log = AccessLog()
        self.session: aiohttp.ClientSession | None = None  # probes (the request path uses self.upstream)
        self.upstream = UpstreamClient()
        self.ready = False
        opts = config.router
        self.services = {
            name: Service(name, svc, build_backend(name, svc, cluster), self._probe, opts.probe_interval_seconds)
            for name, svc in config.services.items()}
        self.endpoints = {name: Endpoint(name, ep, self.services) for name, ep in config.endpoints.items()}
        self._tasks: list[asyncio.Task] = []
        self._largest_body_limit = max(s.max_body for s in self.services.values())
        self._service_metrics: dict[str, ServiceMetrics] = {}
        for service in self.services.values():
            self._export_pool_gauges(service)

    # ---- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=5))
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
        self._service_metrics[service.name] = ServiceMetrics(m, service.name)
        pool.on_eject = lambda replica: m.ejections.labels(service.name).inc()

    # ---- scoring app ---------------------------------------------------------------------------

    def scoring_app(self) -> web.Application:
        app = web.Application()
        routes = app.router
        routes.add_get("/", self.healthy)
        # A plain route per configured name is one dict lookup in aiohttp's router (a `{name}` route is a
        # walk up the path and a regex); the `{name}` routes only answer 404 for names not configured.
        for name, service in self.services.items():
            score = self._service_handler(service, "/score")
            for method in ("GET", "POST"):
                routes.add_route(method, f"/api/v1/service/{name}/score", score, expect_handler=self.expect_continue)
            routes.add_get(f"/api/v1/service/{name}/swagger.json", self._service_handler(service, "/swagger.json"))
        for name, endpoint in self.endpoints.items():
            score = self._endpoint_handler(endpoint)
            for method in ("GET", "POST"):
                routes.add_route(method, f"/api/v1/endpoint/{name}/score", score, expect_handler=self.expect_continue)
        for method in ("GET", "POST"):
            routes.add_route(method, "/api/v1/service/{name}/score", self.no_such_service,
                             expect_handler=self.expect_continue)
            routes.add_route(method, "/api/v1/endpoint/{name}/score", self.no_such_endpoint,
                             expect_handler=self.expect_continue)
        routes.add_get("/api/v1/service/{name}/swagger.json", self.no_such_service)

        async def lifecycle(_app):
            await self.start()
            yield
            await self.stop()

        app.cleanup_ctx.append(lifecycle)
        return app

    async def healthy(self, request: web.Request) -> web.Response:
        return web.Response(text="Healthy")

    async def expect_continue(self, request: web.Request) -> web.Response | None:
        """`Expect: 100-continue`: refuse an oversized body instead of inviting the client to send it."""
        length = request.content_length
        if length is not None and length > self._largest_body_limit:
            return _error(413, "request body too large", _request_id(request))
        if request.version == aiohttp.HttpVersion11 and request.headers.get("Expect", "").lower() == "100-continue":
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        return None

    def _service_handler(self, service: Service, path: str):
        async def handle(request: web.Request) -> web.StreamResponse:
            return await self._score(request, service, service.auth, None, path)
        return handle

    def _endpoint_handler(self, endpoint: Endpoint):
        async def handle(request: web.Request) -> web.StreamResponse:
            picked = endpoint.pick(request.headers.get(VERSION_HEADER))
            if picked is None:
                return _error(404, "no such version", _request_id(request))
            version, service = picked
            return await self._score(request, service, endpoint.auth, version, "/score")
        return handle

    async def no_such_service(self, request: web.Request) -> web.Response:
        return _error(404, "no such service", _request_id(request))

    async def no_such_endpoint(self, request: web.Request) -> web.Response:
        return _error(404, "no such endpoint", _request_id(request))

    async def _score(self, request: web.Request, service: Service, auth, version: str | None,
                     path: str) -> web.StreamResponse:
        started = time.monotonic()
        request_id = _request_id(request)
        attempt = Attempt()
        metrics = self._service_metrics[service.name]
        status = 499  # the client went away before an answer (nginx's convention)
        try:
            if not await auth.check(request.headers.get("Authorization")):
                metrics.auth_failures.inc()
                status = 401
                return _unauthorized(request_id)
            length = request.content_length
            if length is not None and length > service.max_body:
                status = 413
                return _error(413, "request body too large", request_id)
            try:
                response = await forward(
                    self.upstream, service.pool, request, path, request_id, queue_wait=service.queue_wait,
                    scoring_timeout=service.scoring_timeout, replica_timeout=service.replica_timeout,
                    max_body=service.max_body, attempt=attempt,
                    on_retry=metrics.retries.inc,
                    response_headers={VERSION_HEADER: version} if version else None)
            except ProxyError as e:
                status = e.status
                return _error(e.status, e.reason, request_id)
            status = 502 if attempt.cut_off else response.status
            return response
        finally:
            elapsed = time.monotonic() - started
            metrics.answered(status, elapsed)
            if self.config.router.log_requests:
                self.access_log.write(request_line(
                    time.time(), request_id, service.name, version, request.method, request.path, status,
                    attempt.replica.url if attempt.replica else None, attempt.retries, attempt.queue_ms,
                    attempt.upstream_ms, elapsed * 1000))

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


def _request_id(request: web.Request) -> str:
    given = request.headers.get("x-request-id")
    return given if given and REQUEST_ID.match(given) else secrets.token_hex(16)  # as uuid4().hex, cheaper


def _error(status: int, reason: str, request_id: str) -> web.Response:
    response = web.Response(status=status, text=reason + "\n", headers={"x-request-id": request_id})
    if status == 413:
        response.force_close()  # do not read (or drain) the body we refused
    return response


def _unauthorized(request_id: str) -> web.Response:
    # One fixed answer for every failure: the client never learns which part was wrong.
    return web.Response(status=401, text="Unauthorized\n",
                        headers={"WWW-Authenticate": "Bearer", "x-request-id": request_id})

"""The scoring port's routes, and what every scoring request goes through: auth, the body limit,
forwarding to a replica, metrics and the JSON request log.

Routes are exact paths built once from the config (service and endpoint names only change with a
restart), so finding one is a dict lookup. The handler answers through `response.Response`, served by
`http.server.HttpServer`.
"""
from __future__ import annotations

import functools
import itertools
import os
import re
import time
from typing import TYPE_CHECKING

from .accesslog import request_line
from .proxy import Attempt, ProxyError, forward
from .http.request import Request
from .http.response import TEXT, Response
from .service import Endpoint, Service

if TYPE_CHECKING:
    from .app import Router

REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")  # anything else is replaced: it goes into logs
VERSION_HEADER = b"azureml-model-deployment"
GET_POST = (b"GET", b"POST")


class Scoring:
    def __init__(self, router: "Router") -> None:
        self.router = router
        self._log_requests = router.config.router.log_requests
        self._telemetry = router.telemetry  # Application Insights, for the services in _recorded
        self._recorded = frozenset(n for n, s in router.config.services.items() if s.app_insights)
        routes = {"/": ((b"GET", b"HEAD"), self.healthy)}
        for name, service in router.services.items():
            score = functools.partial(self._score, service, service.auth, None)
            routes[f"/api/v1/service/{name}/score"] = (GET_POST, functools.partial(score, b"/score"))
            routes[f"/api/v1/service/{name}/swagger.json"] = ((b"GET",), functools.partial(score, b"/swagger.json"))
        for name, endpoint in router.endpoints.items():
            routes[f"/api/v1/endpoint/{name}/score"] = (GET_POST, functools.partial(self.endpoint, endpoint))
        self._routes = routes

    async def handle(self, request: Request, response: Response) -> None:
        route = self._routes.get(request.path)
        if route is None:
            _error(response, 404, _not_found(request.path), _request_id(request))
            return
        methods, handler = route
        if request.method not in methods:
            response.send_text(405, "method not allowed\n", [(b"Allow", b", ".join(methods))])
            return
        await handler(request, response)

    async def healthy(self, request: Request, response: Response) -> None:
        response.send_text(200, "Healthy")  # v1's liveness answer

    async def endpoint(self, endpoint: Endpoint, request: Request, response: Response) -> None:
        pinned = request.header(VERSION_HEADER)
        picked = endpoint.pick(pinned.decode("latin-1") if pinned else None)
        if picked is None:
            _error(response, 404, "no such version", _request_id(request))
            return
        version, service = picked
        await self._score(service, endpoint.auth, version, b"/score", request, response)

    async def _score(self, service: Service, auth, version: str | None, path: bytes, request: Request,
                     response: Response) -> None:
        """Authenticate, check the body limit, forward to a replica of `service`'s `path`, log."""
        router = self.router
        started = time.monotonic()
        request_id = _request_id(request)
        attempt = Attempt()
        metrics = router.service_metrics[service.name]
        status = 499  # the client went away before an answer (nginx's convention)
        try:
            authorization = request.header(b"authorization")
            if not await auth.check(authorization.decode("latin-1") if authorization is not None else None):
                metrics.auth_failures += 1
                status = 401
                _unauthorized(response, request_id)
                return
            length = request.content_length
            if length is not None and length > service.max_body:
                status = 413  # from the headers alone: not a byte of the body is read
                _error(response, 413, "request body too large", request_id)
                return
            try:
                sent = await forward(
                    router.upstream, service.pool, request, response, path, request_id,
                    queue_wait=service.queue_wait, scoring_timeout=service.scoring_timeout,
                    replica_timeout=service.replica_timeout, max_body=service.max_body, attempt=attempt,
                    on_retry=metrics.retried,
                    response_headers=[(VERSION_HEADER, version.encode())] if version else None)
            except ProxyError as e:
                status = e.status
                _error(response, e.status, e.reason, request_id)
                return
            status = 502 if attempt.cut_off else sent
        finally:
            elapsed = time.monotonic() - started
            metrics.answered(status, elapsed)
            if self._log_requests:
                router.access_log.write(request_line(
                    time.time(), request_id.decode(), service.name, version, request.method.decode("latin-1"),
                    request.path, status, attempt.replica.url if attempt.replica else None, attempt.retries,
                    attempt.queue_ms, attempt.upstream_ms, elapsed * 1000))
            if self._telemetry is not None and service.name in self._recorded:
                self._telemetry.record(service.name, version, request.method, request.path, status, request_id,
                                       request.header(b"x-ms-request-id"), started, elapsed)


# Made request ids: 32 hex digits, a random prefix per process and a counter. Unique across router pods
# (64 random bits each) without a getrandom call per request; an id is a label, not a secret.
_ID_PREFIX = os.urandom(8).hex().encode()
_id_counter = itertools.count()


def _request_id(request: Request) -> bytes:
    given = request.header(b"x-request-id")
    if given is not None and REQUEST_ID.fullmatch(given):
        return given
    return b"%s%016x" % (_ID_PREFIX, next(_id_counter))


def _not_found(path: str) -> str:
    if path.startswith("/api/v1/service/"):
        return "no such service"
    if path.startswith("/api/v1/endpoint/"):
        return "no such endpoint"
    return "not found"


def _error(response: Response, status: int, reason: str, request_id: bytes) -> None:
    if status in (400, 408, 413):
        response.close = True  # the body is refused, broken or late: do not read (or drain) the rest
    response.send(status, [TEXT, (b"x-request-id", request_id)], reason.encode() + b"\n")


def _unauthorized(response: Response, request_id: bytes) -> None:
    # One fixed answer for every failure: the client never learns which part was wrong.
    response.send(401, [TEXT, (b"WWW-Authenticate", b"Bearer"), (b"x-request-id", request_id)], b"Unauthorized\n")

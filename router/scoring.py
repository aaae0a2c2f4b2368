"""The scoring port's routes, and what every scoring request goes through: auth, the body limit,
forwarding to a replica, metrics and the JSON request log.

Routes are exact paths built once from the config (service and endpoint names only change with a
restart), so finding one is a dict lookup. The handler answers through `response.Response`, served by
`http.server.HttpServer`.
"""
from __future__ import annotations

import functools
import os
import re
from typing import TYPE_CHECKING, Awaitable, Callable, Final

from .clock import monotonic, wall_time
from .accesslog import request_line
from .auth import Authenticator
from .callback_forward import forward_now
from .metrics import ServiceMetrics
from .proxy import Attempt, ProxyError, forward
from .http.request import Request
from .http.response import TEXT, Response
from .service import Endpoint, Service

if TYPE_CHECKING:
    from .app import Router

REQUEST_ID: Final = re.compile(rb"[A-Za-z0-9._:-]{1,128}")  # anything else is replaced: it goes into logs
VERSION_HEADER: Final = b"azureml-model-deployment"
GET_POST: Final = (b"GET", b"POST")


class Route:
    """What a path is: the health answer, a service's score or swagger path, or an endpoint."""

    __slots__ = ("methods", "service", "endpoint", "upstream_path")

    def __init__(self, methods: tuple[bytes, ...], service: Service | None = None, endpoint: Endpoint | None = None,
                 upstream_path: bytes = b"/score") -> None:
        self.methods = methods
        self.service = service
        self.endpoint = endpoint
        self.upstream_path = upstream_path


HEALTH: Final = Route((b"GET", b"HEAD"))


class Call:
    """One scoring request on its way: what was decided about it, and what the request log records."""

    __slots__ = ("service", "auth", "version", "path", "request", "response", "request_id", "started",
                 "attempt", "metrics")

    def __init__(self, service: Service, auth: Authenticator, version: str | None, path: bytes, request: Request,
                 response: Response, metrics: ServiceMetrics) -> None:
        self.service = service
        self.auth = auth
        self.version = version
        self.path = path
        self.request = request
        self.response = response
        self.request_id = _request_id(request)
        self.started = monotonic()
        self.attempt = Attempt()
        self.metrics = metrics

    @property
    def authorization(self) -> str | None:
        value = self.request.header(b"authorization")
        return value.decode("latin-1") if value is not None else None

    @property
    def version_header(self) -> list[tuple[bytes, bytes]] | None:
        return [(VERSION_HEADER, self.version.encode())] if self.version else None


class Scoring:
    def __init__(self, router: "Router") -> None:
        self.router = router
        self._log_requests = router.config.router.log_requests
        self._telemetry = router.telemetry  # Application Insights, for the services in _recorded
        self._recorded = frozenset(n for n, s in router.config.services.items() if s.app_insights)
        routes = {"/": HEALTH}
        for name, service in router.services.items():
            routes[f"/api/v1/service/{name}/score"] = Route(GET_POST, service)
            routes[f"/api/v1/service/{name}/swagger.json"] = Route((b"GET",), service, upstream_path=b"/swagger.json")
        for name, endpoint in router.endpoints.items():
            routes[f"/api/v1/endpoint/{name}/score"] = Route(GET_POST, endpoint=endpoint)
        self._routes = routes

    def handle(self, request: Request, response: Response) -> Awaitable[None] | None:
        """Answer `request` (`http.server.Handler`): at once when nothing needs waiting for, in callbacks
        while the replica computes (`callback_forward`), else in the coroutine returned."""
        route = self._routes.get(request.path)
        if route is None:
            _error(response, 404, _not_found(request.path), _request_id(request))
            return None
        if request.method not in route.methods:
            response.send_text(405, "method not allowed\n", [(b"Allow", b", ".join(route.methods))])
            return None
        if route is HEALTH:
            response.send_text(200, "Healthy")  # v1's liveness answer
            return None
        if route.endpoint is None:
            service = route.service
            assert service is not None  # a route has a service or an endpoint
            auth, version = service.auth, None
        else:
            pinned = request.header(VERSION_HEADER)
            picked = route.endpoint.pick(pinned.decode("latin-1") if pinned else None)
            if picked is None:
                _error(response, 404, "no such version", _request_id(request))
                return None
            version, service = picked
            auth = route.endpoint.auth
        call = Call(service, auth, version, route.upstream_path, request, response,
                    self.router.service_metrics[service.name])
        return self._admit(call)

    def _admit(self, call: Call) -> Awaitable[None] | None:
        """Auth and the body limit, then forward: in callbacks if it can start now, else in a coroutine."""
        allowed = call.auth.check_now(call.authorization)
        if allowed is None:  # the authenticator must wait (e.g. for a token issuer's keys)
            return self._score(call)
        if not allowed:
            self._refuse(call)
        elif self._within_limit(call) and not forward_now(call, self):
            return self.complete(call, functools.partial(self._forward, call))
        return None

    async def _score(self, call: Call) -> None:
        """`_admit` for an authenticator that waits."""
        try:
            allowed = await call.auth.check(call.authorization)
        except BaseException:
            self.finish(call, 499)  # the client went away before an answer (nginx's convention)
            raise
        if not allowed:
            self._refuse(call)
        elif self._within_limit(call):
            await self.complete(call, functools.partial(self._forward, call))

    def _forward(self, call: Call) -> Awaitable[int]:
        service = call.service
        return forward(self.router.upstream, service.pool, call.request, call.response, call.path, call.request_id,
                       queue_wait=service.queue_wait, scoring_timeout=service.scoring_timeout,
                       replica_timeout=service.replica_timeout, max_body=service.max_body, attempt=call.attempt,
                       on_retry=call.metrics.retried, response_headers=call.version_header, started=call.started)

    async def complete(self, call: Call, work: Callable[[], Awaitable[int]]) -> None:
        """Await the forwarding `work` (its status, or a ProxyError to answer), then count and log the call."""
        status = 499  # the client went away before an answer (nginx's convention)
        try:
            try:
                sent = await work()
            except ProxyError as e:
                status = e.status
                _error(call.response, e.status, e.reason, call.request_id)
                return
            status = 502 if call.attempt.cut_off else sent
        finally:
            self.finish(call, status)

    def fail(self, call: Call, status: int, reason: str) -> None:
        """Answer with an error the router makes, and log it."""
        _error(call.response, status, reason, call.request_id)
        self.finish(call, status)

    def _within_limit(self, call: Call) -> bool:
        length = call.request.content_length
        if length is not None and length > call.service.max_body:
            self.fail(call, 413, "request body too large")  # from the headers alone: not a byte of the body is read
            return False
        return True

    def _refuse(self, call: Call) -> None:
        call.metrics.auth_failures += 1
        _unauthorized(call.response, call.request_id)
        self.finish(call, 401)

    def finish(self, call: Call, status: int) -> None:
        """Count and log the answered request."""
        elapsed = monotonic() - call.started
        call.metrics.answered(status, elapsed)
        attempt, request, service = call.attempt, call.request, call.service
        if self._log_requests:
            self.router.access_log.write(request_line(
                wall_time(), call.request_id.decode(), service.name, call.version, request.method.decode("latin-1"),
                request.path, status, attempt.replica.url if attempt.replica else None, attempt.retries,
                attempt.queue_ms, attempt.upstream_ms, elapsed * 1000))
        if self._telemetry is not None and service.name in self._recorded:
            self._telemetry.record(service.name, call.version, request.method, request.path, status, call.request_id,
                                   request.header(b"x-ms-request-id"), call.started, elapsed)


class RequestIds:
    """Made request ids: 32 hex digits, a random prefix per process and a counter. Unique across router pods
    (64 random bits each) without a getrandom call per request; an id is a label, not a secret.

    The counter's last two digits come from a table and the rest is formatted once per 256 ids: formatting
    `%016x` on every request was 2 % of the request path.
    """

    def __init__(self) -> None:
        self._prefix = os.urandom(8).hex().encode()
        self._count = 0
        self._high = b""  # the prefix and all but the counter's last two digits

    def next(self) -> bytes:
        count = self._count
        self._count = count + 1
        low = count & 0xFF
        if low == 0:
            self._high = b"%s%014x" % (self._prefix, count >> 8)
        return self._high + _HEX_BYTE[low]


_HEX_BYTE: Final = [b"%02x" % i for i in range(256)]
_IDS: Final = RequestIds()


def _request_id(request: Request) -> bytes:
    given = request.header(b"x-request-id")
    if given is not None and REQUEST_ID.fullmatch(given):
        return given
    return _IDS.next()


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

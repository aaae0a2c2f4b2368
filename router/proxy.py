"""Forward one scoring request to a replica: slot, retry before the first byte, timeouts, streaming.

Bodies are streamed both ways in chunks; only a response small enough to fit in one chunk is read whole
(it saves a write per request, and is no bigger than one streamed chunk would be).
"""
from __future__ import annotations

import asyncio
import time

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from .pool import NoCapacity, Replica, ReplicaPool

CHUNK = 64 * 1024
# Hop-by-hop headers (RFC 9110 7.6.1) are per connection; Authorization carries the caller's key or
# token, which the model has no use for and should never see.
DROP_REQUEST_HEADERS = frozenset(h.lower() for h in (
    "Connection", "Keep-Alive", "Proxy-Connection", "TE", "Trailer", "Transfer-Encoding", "Upgrade",
    "Host", "Authorization", "Expect", "Proxy-Authorization"))
DROP_RESPONSE_HEADERS = frozenset(h.lower() for h in (
    "Connection", "Keep-Alive", "Proxy-Connection", "Trailer", "Transfer-Encoding", "Upgrade",
    "Content-Length", "Date", "Server"))


class ProxyError(Exception):
    """Ends a request with `status` (and a short reason, safe to show the client)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class BodyTooLarge(Exception):
    pass


class RequestBody:
    """The client's body as a re-startable async iterable, counted against the size limit.

    `started` tells whether any byte was read from the client: until then a failed attempt can be retried
    on another replica with a fresh iterator.
    """

    def __init__(self, request: web.Request, limit: int) -> None:
        self._content = request.content
        self._limit = limit
        self.started = False
        self.too_large = False

    async def chunks(self):
        self.started = True
        seen = 0
        async for chunk in self._content.iter_chunked(CHUNK):
            seen += len(chunk)
            if seen > self._limit:  # chunked upload: stop as soon as the count passes the limit
                self.too_large = True
                raise BodyTooLarge()
            yield chunk


def upstream_headers(request: web.Request, request_id: str) -> CIMultiDict:
    headers = CIMultiDict((k, v) for k, v in request.headers.items() if k.lower() not in DROP_REQUEST_HEADERS)
    headers["x-request-id"] = request_id
    return headers


class Attempt:
    """What happened on the way to the replica, for the request log."""

    __slots__ = ("replica", "queue_ms", "upstream_ms", "retries", "cut_off")

    def __init__(self) -> None:
        self.replica: Replica | None = None
        self.queue_ms = 0.0
        self.upstream_ms = 0.0
        self.retries = 0
        self.cut_off = False  # the replica failed after the status line was sent to the client


async def forward(session: aiohttp.ClientSession, pool: ReplicaPool, request: web.Request, path: str,
                  request_id: str, *, queue_wait: float, scoring_timeout: float, replica_timeout: float,
                  max_body: int, attempt: Attempt, on_retry=lambda: None,
                  response_headers: dict[str, str] | None = None) -> web.StreamResponse:
    """Forward `request` to a replica of `pool`; raises ProxyError for the statuses the router makes.

    The deadline (arrival + scoring timeout) covers queueing, retries and the replica's response headers.
    """
    deadline = time.monotonic() + scoring_timeout
    upstream_timeout = aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=replica_timeout)
    body: RequestBody | bytes | None = None
    if request.body_exists:
        length = request.content_length
        # A body that fits in one chunk is read at once: one write upstream, and it can be re-sent.
        small = length is not None and length <= CHUNK
        body = await request.read() if small else RequestBody(request, max_body)
    streamed = isinstance(body, RequestBody)
    headers = upstream_headers(request, request_id)
    query = request.query_string
    while True:
        replica = await _acquire(pool, queue_wait, deadline, attempt)
        url = replica.url + path + ("?" + query if query else "")
        sent_at = time.monotonic()
        # sock_read bounds a replica that stalls mid-body; it cannot fire before the 504 (see below).
        send = asyncio.ensure_future(session.request(
            request.method, url, headers=headers, data=body.chunks() if streamed else body,
            allow_redirects=False, auto_decompress=False, timeout=upstream_timeout))
        try:
            done, _ = await asyncio.wait((send,), timeout=max(0.0, deadline - sent_at))
        except asyncio.CancelledError:  # the client went away; the replica did not notice
            _keep_slot_until_answer(pool, replica, send, sent_at + replica_timeout)
            raise
        attempt.upstream_ms = (time.monotonic() - sent_at) * 1000
        if not done:
            _keep_slot_until_answer(pool, replica, send, sent_at + replica_timeout)
            raise ProxyError(504, "scoring timed out")
        try:
            upstream = send.result()
        except aiohttp.ClientConnectorError:
            pool.release(replica)
            pool.eject(replica)
            if not (streamed and body.started) and time.monotonic() < deadline:
                attempt.retries += 1
                on_retry()
                continue
            raise ProxyError(502, "replica unreachable") from None
        except BaseException as e:
            pool.release(replica)
            if streamed and body.too_large:
                raise ProxyError(413, "request body too large") from e
            if isinstance(e, (aiohttp.ClientError, asyncio.TimeoutError, OSError)):
                raise ProxyError(502, "replica failed") from e
            raise
        return await _relay(pool, replica, upstream, request, request_id, response_headers, attempt)


async def _acquire(pool: ReplicaPool, queue_wait: float, deadline: float, attempt: Attempt) -> Replica:
    started = time.monotonic()
    try:
        replica = await pool.acquire(min(queue_wait, max(0.0, deadline - started)))
    except NoCapacity:
        attempt.queue_ms += (time.monotonic() - started) * 1000
        raise ProxyError(503, "no replica available within the queue wait") from None
    attempt.queue_ms += (time.monotonic() - started) * 1000
    attempt.replica = replica
    return replica


async def _relay(pool: ReplicaPool, replica: Replica, upstream: aiohttp.ClientResponse,
                 request: web.Request, request_id: str,
                 extra_headers: dict[str, str] | None, attempt: Attempt) -> web.StreamResponse:
    """Send the replica's answer back; the slot is released once the replica's body is consumed."""
    response = None
    try:
        headers = CIMultiDict((k, v) for k, v in upstream.headers.items()
                              if k.lower() not in DROP_RESPONSE_HEADERS)
        headers["x-request-id"] = request_id
        if extra_headers:
            headers.update(extra_headers)
        length = upstream.content_length
        if length is not None and length <= CHUNK:
            body = await upstream.read()
            return web.Response(status=upstream.status, body=body, headers=headers)
        response = web.StreamResponse(status=upstream.status, headers=headers)
        if length is not None:
            response.content_length = length
        await response.prepare(request)
        async for chunk in upstream.content.iter_chunked(CHUNK):
            await response.write(chunk)
        await response.write_eof()
        return response
    except (aiohttp.ClientError, asyncio.TimeoutError) as e:
        if response is None or not response.prepared:
            raise ProxyError(502, "replica failed") from e
        # The status line is gone already: cut the client's connection so it sees an incomplete body.
        if request.transport is not None:
            request.transport.abort()
        attempt.cut_off = True
        return response
    finally:
        upstream.release()
        pool.release(replica)


def _keep_slot_until_answer(pool: ReplicaPool, replica: Replica, send: asyncio.Future, until: float) -> None:
    """The replica is still computing: its slot stays taken until it answers or its own timeout passes."""
    asyncio.get_running_loop().create_task(_hold_slot(pool, replica, send, until))


async def _hold_slot(pool: ReplicaPool, replica: Replica, send: asyncio.Future, until: float) -> None:
    try:
        done, _ = await asyncio.wait((send,), timeout=max(0.0, until - time.monotonic()))
        if not done:
            send.cancel()
        elif not send.exception():
            send.result().close()
    finally:
        pool.release(replica)

"""Forward one scoring request to a replica: slot, retry before the first byte, timeouts, streaming.

Bodies are streamed both ways in chunks; only a response small enough to fit in one chunk is read whole
(it saves a write per request, and is no bigger than one streamed chunk would be).
"""
from __future__ import annotations

import asyncio
import functools
from typing import Callable, Final

from .clock import monotonic
from .pool import NoCapacity, Replica, ReplicaPool
from .http.errors import BadRequestBody, BodyTimeout, ClientGone
from .http.request import Request
from .http.response import Response
from .http.upstream import (ConnectError, Exchange, ScoringTimeout, UpstreamClient, UpstreamConnection,
                       UpstreamError)

CHUNK: Final = 64 * 1024
# Hop-by-hop headers (RFC 9110 7.6.1) are per connection; Authorization carries the caller's key or
# token, which the model has no use for and should never see. x-request-id is written once, by the router
# (the client's own when it is valid): forwarded as well, the server would read "id,id" (its Request Id in
# Application Insights) or, for a replaced id, the client's forged one beside ours.
DROP_REQUEST_HEADERS: Final = frozenset(h.lower().encode() for h in (
    "Connection", "Keep-Alive", "Proxy-Connection", "TE", "Trailer", "Transfer-Encoding", "Upgrade",
    "Host", "Authorization", "Expect", "Proxy-Authorization", "X-Request-Id"))
# Dropped from the replica's answer (by the upstream client, with the hop-by-hop ones, as it parses): the
# router sets Date and x-request-id itself, and the replica's Server (its software and version) is none of
# the caller's business.
DROP_RESPONSE_HEADERS: Final = frozenset((b"date", b"server", b"x-request-id"))


class ProxyError(Exception):
    """Ends a request with `status` (and a short reason, safe to show the client)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class BodyTooLarge(Exception):
    pass


class RequestBody:
    """The client's body, read as it arrives (`next_chunk`) and counted against the size limit.

    `started` tells whether any byte was read from the client: until then a failed attempt can be retried
    on another replica with a fresh iterator.
    """

    def __init__(self, request: Request, limit: int) -> None:
        self._request = request
        self._limit = limit
        self.started = False
        self.too_large = False
        self._seen = 0

    async def next_chunk(self) -> bytes | None:
        """The next chunk (None at the body's end), counted against the limit."""
        self.started = True
        chunk = await self._request.next_chunk()
        if chunk is not None:
            self._seen += len(chunk)
            if self._seen > self._limit:  # chunked upload: stop as soon as the count passes the limit
                self.too_large = True
                raise BodyTooLarge()
        return chunk


def request_head(request: Request, path: bytes, request_id: bytes, body_length: int | None,
                 chunked: bool) -> tuple[bytes, bytes, bytes]:
    """The request line and headers for the replica, in three parts: the request line goes around the
    replica's path prefix, the Host value (the replica's address) goes between the other two.

    Built from the raw header bytes once per request, so a retry costs no more than a join. The length is
    the router's own count when it holds the whole body, so the replica's framing always matches.
    """
    query = request.query  # as the client sent it: no decoding and re-encoding
    target = path + b"?" + query if query else path
    lines = [b"\r\n"]
    for name, value in request.headers:
        lowered = name.lower()
        if lowered not in DROP_REQUEST_HEADERS and not (body_length is not None and lowered == b"content-length"):
            lines += (name, b": ", value, b"\r\n")
    lines.append(b"x-request-id: %s\r\n" % request_id)
    if body_length is not None:
        lines.append(b"Content-Length: %d\r\n" % body_length)
    if chunked:
        lines.append(b"Transfer-Encoding: chunked\r\n")
    lines.append(b"\r\n")
    return request.method + b" ", target + b" HTTP/1.1\r\nHost: ", b"".join(lines)


class Attempt:
    """What happened on the way to the replica, for the request log."""

    __slots__ = ("replica", "queue_ms", "upstream_ms", "retries", "cut_off", "fresh")

    def __init__(self) -> None:
        self.replica: Replica | None = None
        self.fresh = False  # a kept-alive connection was found reset: the next try takes a new one
        self.queue_ms = 0.0
        self.upstream_ms = 0.0
        self.retries = 0
        self.cut_off = False  # the replica failed after the status line was sent to the client


async def forward(client: UpstreamClient, pool: ReplicaPool, request: Request, response: Response,
                  path: bytes, request_id: bytes, *, queue_wait: float, scoring_timeout: float,
                  replica_timeout: float, max_body: int, attempt: Attempt, on_retry: Callable[[], None],
                  response_headers: list[tuple[bytes, bytes]] | None = None, started: float) -> int:
    """Forward `request` to a replica of `pool` and relay the answer through `response`; returns its status.

    Raises ProxyError, before anything is written, for the statuses the router makes. The deadline
    (`started`, the request's arrival, + scoring timeout) covers queueing, retries and the replica's response
    headers. A request the callback path began comes with, in `attempt`, the replica it picked and whether its
    kept-alive connection turned out reset.
    """
    deadline = started + scoring_timeout
    whole = b""  # a body small enough to be read at once
    stream: RequestBody | None = None  # or the body as it arrives
    body_length = None  # set when the whole body is in hand
    if request.body_exists:
        length = request.content_length
        # A body that fits in one chunk is read at once: one write upstream, and it can be re-sent.
        small = length is not None and length <= CHUNK
        try:
            if small:
                whole = await request.read()
                body_length = len(whole)
            else:
                stream = RequestBody(request, max_body)
        except (BadRequestBody, BodyTimeout) as e:
            raise _body_failed(e) from None
        if request.failed:  # a streamed body already broke off (e.g. bad chunking in its first read): no replica sees it
            _raise_body_failure(request)
    chunked = stream is not None and request.content_length is None
    method, target, headers = request_head(request, path, request_id, body_length, chunked)
    replica = None
    fresh = attempt.fresh  # once a kept-alive connection failed: from then on only new connections
    # The callbacks' pick is preferred, but the log names a replica only once this request has one.
    prefer, attempt.replica = attempt.replica, None
    while True:
        if replica is None:
            replica = pool.try_acquire(prefer=prefer)
            if replica is None:
                replica = await _wait_for_slot(pool, queue_wait, deadline, attempt)
                if request.failed:  # the body broke off while the request queued: no replica is to see it
                    pool.release(replica)
                    _raise_body_failure(request)
            attempt.replica = replica
        sent_at = monotonic()
        connections = client.connections(replica.url)
        try:
            conn = await connections.get(deadline - sent_at, fresh)
        except ConnectError as e:
            pool.release(replica)
            if e.timed_out and monotonic() >= deadline:  # slow to connect, but our deadline is the cause
                raise ProxyError(504, "scoring timed out") from None
            pool.eject(replica)
            replica = None
            if not (stream is not None and stream.started) and monotonic() < deadline:
                attempt.retries += 1
                on_retry()
                continue
            raise ProxyError(502, "replica unreachable") from None
        except BaseException:
            pool.release(replica)
            raise
        head = b"".join((method, connections.prefix, target, connections.authority, headers))
        exchange = conn.start(head if stream is not None else head + whole, replica_timeout)
        if stream is not None:
            exchange.pump(asyncio.get_running_loop().create_task(_upload(conn, exchange, stream, chunked)))
        else:
            exchange.sent = True
        try:
            await _response_headers(pool, replica, exchange, deadline, sent_at, replica_timeout, attempt, stream)
        except NeverSent:
            # The kept-alive connection had been reset before the request was written: the replica cannot
            # have seen it. Send it on a new connection to the same replica, keeping its slot.
            fresh = True
            attempt.retries += 1
            on_retry()
            continue
        return await relay(pool, replica, exchange, response, request_id, response_headers, attempt)


def _raise_body_failure(request: Request) -> None:
    """Raise the answer to a body that broke off: 400 or 408, or ClientGone when nobody is left to answer."""
    try:
        request.raise_if_failed()
    except (BadRequestBody, BodyTimeout) as e:
        raise _body_failed(e) from None


def _body_failed(error: BadRequestBody | BodyTimeout) -> ProxyError:
    """The client's body broke its framing (400) or did not arrive in time (408)."""
    if isinstance(error, BodyTimeout):
        return ProxyError(408, "request body timed out")
    return ProxyError(400, "malformed request body")


class NeverSent(Exception):
    """The request provably never reached the replica (its connection was reset before the write), so
    it may go again. Any other failure after the write is a 502: the replica may have acted on it, and a
    scoring call is not known to be safe to repeat."""


async def _response_headers(pool: ReplicaPool, replica: Replica, exchange: Exchange, deadline: float,
                            sent_at: float, replica_timeout: float, attempt: Attempt,
                            stream: RequestBody | None) -> None:
    """Wait for the replica's status line and headers, until the deadline.

    One timer on the exchange's own future, rather than a task and `asyncio.wait` per request. When the
    router stops waiting (504) or the client goes away, the replica is still computing: its slot stays
    taken until it answers or its own scoring timeout passes.
    """
    timer = asyncio.get_running_loop().call_later(max(0.0, deadline - monotonic()), exchange.time_out)
    try:
        assert exchange.response is not None  # an exchange without a listener has its future
        await exchange.response
    except (asyncio.CancelledError, ScoringTimeout) as e:
        exchange.hold(sent_at + replica_timeout, functools.partial(pool.release, replica))
        if isinstance(e, ScoringTimeout):
            raise ProxyError(504, "scoring timed out") from None
        raise
    except BaseException as e:
        if isinstance(e, UpstreamError) and exchange.unsent and not (stream is not None and stream.started) \
                and monotonic() < deadline:
            raise NeverSent() from e  # the slot stays with the request
        pool.release(replica)
        if stream is not None and stream.too_large:
            raise ProxyError(413, "request body too large") from e
        if isinstance(e, (BadRequestBody, BodyTimeout)):  # the upload broke off: the client's fault
            raise _body_failed(e) from e
        if isinstance(e, ClientGone):
            raise
        if isinstance(e, (UpstreamError, OSError)):
            raise ProxyError(502, "replica failed") from e
        raise
    finally:
        timer.cancel()
        attempt.upstream_ms = (monotonic() - sent_at) * 1000


async def _upload(conn: UpstreamConnection, exchange: Exchange, body: RequestBody, chunked: bool) -> None:
    """Stream the client's body to the replica, at the replica's pace."""
    try:
        while (chunk := await body.next_chunk()) is not None:
            if chunked:
                conn.writelines((b"%x\r\n" % len(chunk), chunk, b"\r\n"))
            else:
                conn.write(chunk)
            await conn.drain()
        if chunked:
            conn.write(b"0\r\n\r\n")
        exchange.sent = True
    except asyncio.CancelledError:
        raise  # the exchange ended first (answered early, failed, or abandoned)
    except BaseException as e:  # body too large, client gone, replica gone
        exchange.fail(e)


async def _wait_for_slot(pool: ReplicaPool, queue_wait: float, deadline: float, attempt: Attempt) -> Replica:
    started = monotonic()
    try:
        replica = await pool.acquire(min(queue_wait, max(0.0, deadline - started)))
    except NoCapacity:
        raise ProxyError(503, "no replica available within the queue wait") from None
    finally:
        attempt.queue_ms += (monotonic() - started) * 1000
    return replica


def answer_headers(exchange: Exchange, request_id: bytes,
                   extra_headers: list[tuple[bytes, bytes]] | None) -> list[tuple[bytes, bytes]]:
    """The replica's headers for the client: what the upstream client left (it dropped hop-by-hop ones and
    the replica's Date, Server and x-request-id), the request id, and `extra_headers` in place of the same."""
    headers = exchange.headers
    headers.append((b"x-request-id", request_id))
    if extra_headers:
        replaced = {k.lower() for k, _ in extra_headers}
        headers = [(k, v) for k, v in headers if k.lower() not in replaced] + extra_headers
    return headers


def answer_length(exchange: Exchange) -> int | None:
    """The answer's body length, if known before it arrives."""
    length = exchange.content_length
    if length is None and exchange.status in (204, 304):
        return 0  # no body by definition
    return length


async def relay(pool: ReplicaPool, replica: Replica, exchange: Exchange, response: Response,
                 request_id: bytes, extra_headers: list[tuple[bytes, bytes]] | None, attempt: Attempt) -> int:
    """Send the replica's answer back. The slot is released as soon as the replica's answer is read, not
    when the client has it: up to `HttpLimits.response_buffer_bytes` wait in the client's write buffer
    meanwhile, and a client that reads none of it within the send timeout is cut off (`server.sweep`)."""
    status = exchange.status
    try:
        headers = answer_headers(exchange, request_id, extra_headers)
        length = answer_length(exchange)
        if length is not None and length <= CHUNK:
            response.send(status, headers, await exchange.read())
            return status
        response.start(status, headers, length)
        while (chunk := await exchange.next_chunk()) is not None:
            # Wait for room before a write, not after it: once the last chunk is written the loop ends
            # without waiting on the client, and the slot goes back.
            await response.drain()
            response.write(chunk)
        response.end()
        return status
    except ClientGone:
        raise  # nobody to answer (logged as 499)
    except (UpstreamError, ConnectionError, asyncio.TimeoutError) as e:
        if not response.started:
            raise ProxyError(502, "replica failed") from e
        # The status line is gone already: cut the client's connection so it sees an incomplete body.
        response.abort()
        attempt.cut_off = True
        return status
    finally:
        exchange.close()
        pool.release(replica)

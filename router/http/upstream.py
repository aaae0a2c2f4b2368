"""A lean HTTP/1.1 client for the request path: asyncio protocols, httptools' parser, kept-alive connections.

aiohttp's ClientSession was most of the router's time per request (a request object, a connector lookup,
a response object, stream readers and several tasks and futures each time). A proxy needs much less:
write one request head, parse one response, hand the body on. So the request path uses this client, and
aiohttp's client stays for everything else (probes, the Kubernetes API, peers).

Per replica, idle connections are kept for reuse (most recently used first). The Azure ML inference server
closes every connection, so connecting is one `create_connection` with nothing else around it. A replica
may close an idle connection just as a request is written on it. Only when the write itself failed (the
connection had been reset: `unsent`) is the request known not to have reached the replica; the proxy
then sends it again. After a write, a lost connection is a failure, never a replay.

One `Exchange` is one request and its response. Its `response` future resolves when the status line and
headers are in; the body then arrives in a buffer the caller reads (whole, or chunk by chunk with the
replica's socket paused while the buffer is full). An exchange the caller gives up on (504, client gone)
can be `hold`-ed: its callback runs once the replica has answered, or at a time limit when the
connection is closed. An exchange may instead tell a listener (`ExchangeListener`) of its headers and its
end, for the request path in callbacks (`router/callback_forward.py`), which then needs no future.
"""
from __future__ import annotations

import asyncio
import logging
import ssl as ssl_module
from collections import deque
from typing import Callable, Final, Protocol, cast
from urllib.parse import urlsplit

import httptools

from ..clock import monotonic
from .readflow import ReadFlow
from .writeflow import WriteFlow, protocol_factory

log = logging.getLogger("router.upstream")
CONNECT_TIMEOUT: Final = 5.0
# The answer's framing (consumed here, never passed on) and the other hop-by-hop headers (RFC 9110 7.6.1):
# per connection, so no caller wants them. A caller may name more to drop (`UpstreamClient(drop_headers=)`).
FRAMING: Final = frozenset((b"content-length", b"transfer-encoding"))
HOP_BY_HOP: Final = FRAMING | {b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"upgrade"}
IDLE_SECONDS = 15.0  # close connections idle this long (servers' own keep-alive timeouts are longer)


class ConnectError(Exception):
    """No connection: nothing was sent, so the request may go to another replica."""

    def __init__(self, message: str, timed_out: bool) -> None:
        super().__init__(message)
        self.timed_out = timed_out


class UpstreamError(Exception):
    """The replica failed, closed the connection, or answered something that is not HTTP/1.x."""


class ScoringTimeout(Exception):
    """The deadline passed before the replica's response headers."""


class ExchangeListener(Protocol):
    def exchange_answered(self, exchange: "Exchange") -> None:
        """The status line and headers are in."""

    def exchange_ended(self, exchange: "Exchange", error: BaseException | None) -> None:
        """The response is complete (`error` None), or the exchange failed."""

    def exchange_paused(self, exchange: "Exchange") -> None:
        """A read from the replica ended with the headers in and the body not yet complete."""


class Exchange(ReadFlow):
    """One request on a connection and the replica's response to it; the response body is read through
    `ReadFlow` (`read`, `next_chunk`), with the replica's socket paused while the client is slower."""

    __slots__ = ("response", "status", "headers", "content_length", "sent", "unsent", "_conn",
                 "_chunks", "_buffered", "_ended", "_error", "_waiter", "_on_end", "_timer", "_pump",
                 "_read_timeout", "_loop", "listener")

    def __init__(self, conn: "UpstreamConnection", read_timeout: float,
                 listener: ExchangeListener | None = None) -> None:
        self._loop = conn.loop
        # Resolves (with None) at the headers; a listener is told instead (and may `listen(None)` to hand
        # the exchange on to a coroutine, which then reads the body through ReadFlow).
        self.listener = listener
        self.response: asyncio.Future | None = None if listener is not None else conn.loop.create_future()
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []  # raw, as the replica sent them
        self.content_length: int | None = None
        self.sent = False  # the whole request is written (only then may the connection be reused)
        self.unsent = False  # the write failed at once: the replica cannot have received the request
        self._conn: UpstreamConnection | None = conn
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._ended = False  # the response is complete, or the exchange failed
        self._error: BaseException | None = None
        self._waiter: asyncio.Future | None = None
        self._on_end: Callable[[], None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._pump: asyncio.Task | None = None
        self._read_timeout = read_timeout

    # ---- the caller's side -------------------------------------------------------------------

    def time_out(self) -> None:
        """The scoring deadline passed: the caller stops waiting for the headers."""
        if self.response is not None and not self.response.done():
            self.response.set_exception(ScoringTimeout())

    def close(self) -> None:
        """The caller is done with the body; an unfinished exchange loses its connection."""
        if not self._ended:
            self.fail(UpstreamError("abandoned"))

    def hold(self, until: float, on_end: Callable[[], None]) -> None:
        """Nobody waits for the answer any more: call `on_end` once the replica has answered, or at
        `until` (monotonic), when the connection is closed."""
        self._chunks.clear()
        if self._ended:
            on_end()
            return
        self._on_end = on_end
        self._timer = self._loop.call_later(max(0.0, until - monotonic()), self.close)

    def pump(self, task: asyncio.Task) -> None:
        """`task` streams the request body; it is cancelled if the exchange ends first."""
        self._pump = task

    # ---- the connection's side ---------------------------------------------------------------

    def _headers_done(self, status: int, headers: list[tuple[bytes, bytes]], length: int | None) -> None:
        """`headers`: the answer's, less hop-by-hop ones and those the client was told to drop."""
        self.status, self.headers, self.content_length = status, headers, length
        if self.listener is not None:
            self.listener.exchange_answered(self)
        elif self.response is not None and not self.response.done():  # None: a listener's, now held
            self.response.set_result(None)  # not self: exchange -> future -> exchange would be a cycle

    def _feed(self, chunk: bytes) -> None:
        if self._on_end is not None:  # held: nobody reads it
            return
        self._queue(chunk)

    def _finish(self) -> None:
        self._end(None)

    def fail(self, error: BaseException) -> None:
        """The exchange ends with `error` (the upload broke off, the replica failed)."""
        if self.response is not None and not self.response.done():
            self.response.set_exception(error)
        self._end(error)

    def _end(self, error: BaseException | None) -> None:
        if self._ended:
            return
        self._ended, self._error = True, error
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.exchange_ended(self, reusable=error is None and self.sent)
        if self._pump is not None and not self._pump.done():
            self._pump.cancel()
        if self._timer is not None:
            self._timer.cancel()
        self._wake()
        if self._on_end is not None:
            self._on_end()
        listener, self.listener = self.listener, None  # it holds the exchange: no cycle left for the collector
        if listener is not None:
            listener.exchange_ended(self, error)

    # ---- ReadFlow ----------------------------------------------------------------------------

    @property
    def _body_done(self) -> bool:
        return self._ended

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise UpstreamError(str(self._error) or "replica failed") from self._error

    def _backlogged(self) -> None:
        if self._conn is not None:
            self._conn.pause()

    def _drained(self) -> None:
        if self._conn is not None:
            self._conn.resume()

    async def _wait(self) -> None:
        # sock_read in aiohttp's terms: a replica that stalls mid-body for this long fails the request.
        self._waiter = self._loop.create_future()
        try:
            async with asyncio.timeout(self._read_timeout):
                await self._waiter
        finally:
            self._waiter = None


class UpstreamConnection(WriteFlow):
    """One connection to a replica, carrying one exchange at a time (HTTP/1.1, no pipelining). asyncio's
    protocol by its methods, as `server.HttpConnection`."""

    def __init__(self, replica: "ReplicaConnections") -> None:
        self.loop = replica.loop
        self._replica = replica
        self._parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.idle_since = 0.0
        self.idle = False  # in its replica's idle list
        self.busy = False  # lent out by its replica (`get`, `idle`), not yet back or lost
        self._keep_alive = False
        self._exchange: Exchange | None = None
        self._drop = replica.drop_headers
        self._length: int | None = None
        self._chunked = False
        self._headers: list[tuple[bytes, bytes]] = []
        self._close_delimited = False
        self._feeding = False  # in the parser: an answer that ends here is offered for reuse after the read
        self._reuse = False

    # ---- request side ------------------------------------------------------------------------

    def start(self, data: bytes, read_timeout: float, listener: ExchangeListener | None = None) -> Exchange:
        """Write a request head (and a body small enough to go with it) and return its exchange."""
        exchange = self._exchange = Exchange(self, read_timeout, listener)
        self._headers, self._length, self._chunked = [], None, False
        self.transport.write(data)
        if self.transport.is_closing():
            # The socket refused the write (reset by the replica while idle): nothing left this machine.
            exchange.unsent = True
        return exchange

    @property
    def _write_closed(self) -> bool:
        return self.closed

    def _closed_error(self) -> Exception:
        return UpstreamError("connection to the replica closed")

    def pause(self) -> None:
        if not self.closed:
            self.transport.pause_reading()

    def resume(self) -> None:
        if not self.closed:
            self.transport.resume_reading()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.transport.close()

    def exchange_ended(self, exchange: Exchange, reusable: bool) -> None:
        if self._exchange is exchange:
            self._exchange = None
        if reusable and not self.closed and self._keep_alive:
            # The answer may have ended in the read that filled its buffer and paused the socket: an idle
            # connection must read again, or the next answer on it is never seen.
            self.resume()
            if self._feeding:
                # Not yet: the callbacks this answer ends in may start a request, and the rest of this read
                # (bytes past the answer, which close the connection) must not become that one's answer.
                self._reuse = True
            else:
                self._replica.put(self)
        else:
            self.close()

    # ---- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self._feeding = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as e:
            if isinstance(e, httptools.HttpParserCallbackError) and e.__context__ is not None:
                # Not the replica's bytes but the router's own code, run from a parser callback (the answer
                # is relayed from here in callbacks): a bug, so its traceback is logged, not taken for garbage.
                log.error("relaying a replica's answer failed", exc_info=e.__context__)
            self.close()
            if self._exchange is not None:
                self._exchange.fail(UpstreamError(f"invalid response from the replica: {e}"))
            return
        finally:
            self._feeding = False
        if self._reuse:
            self._reuse = False
            if not self.closed:
                self._replica.put(self)
        exchange = self._exchange
        if exchange is not None and exchange.listener is not None and exchange.status:
            exchange.listener.exchange_paused(exchange)

    def eof_received(self) -> None:
        """The replica half-closed: asyncio then closes the transport (as `asyncio.Protocol`'s default)."""

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._replica.forget(self)
        exchange, self._exchange = self._exchange, None
        if exchange is not None:
            if self._close_delimited and exchange.status:
                exchange._finish()  # a body without length or chunking ends when the connection does
            else:
                exchange.fail(UpstreamError("the replica closed the connection"))
        self._fail_drain()

    # ---- httptools callbacks -----------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self._exchange is None:  # an answer nobody asked for: the next request's answer would be read after it
            self.close()

    def on_header(self, name: bytes, value: bytes) -> None:
        # One pass: framing read, hop-by-hop (and the caller's) dropped, the rest kept as sent.
        lowered = name.lower()
        if lowered not in self._drop:
            self._headers.append((name, value))
        elif lowered == b"content-length":
            self._length = int(value)  # httptools checked the digits
        elif lowered == b"transfer-encoding":
            self._chunked = b"chunked" in value.lower()

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if status < 200:  # 1xx interim answer: the real one follows
            self._headers, self._length, self._chunked = [], None, False
            return
        exchange = self._exchange
        if exchange is None:  # bytes nobody asked for
            self.close()
            return
        length = self._length
        self._close_delimited = length is None and not self._chunked and status not in (204, 304)
        self._keep_alive = self._parser.should_keep_alive()
        exchange._headers_done(status, self._headers, length)

    def on_body(self, body: bytes) -> None:
        if self._exchange is not None:
            self._exchange._feed(body)

    def on_message_complete(self) -> None:
        if self._parser.get_status_code() < 200:
            return
        self._close_delimited = False
        if self._exchange is not None:
            self._exchange._finish()


class ReplicaConnections:
    """A replica's idle kept-alive connections, and new ones when none is idle."""

    def __init__(self, url: str, loop: asyncio.AbstractEventLoop,
                 on_unused: Callable[["ReplicaConnections"], None], drop_headers: frozenset[bytes] = HOP_BY_HOP) -> None:
        parts = urlsplit(url)
        self.url = url
        self.loop = loop
        self.drop_headers = drop_headers
        self._on_unused = on_unused
        if parts.hostname is None:
            raise ValueError(f"a replica URL names its host: {url!r}")
        self.host = parts.hostname
        self.https = parts.scheme == "https"
        self.port = parts.port or (443 if self.https else 80)
        self.authority = parts.netloc.encode("ascii")
        self.prefix = parts.path.rstrip("/").encode("ascii")  # a base URL may carry a path
        self._ssl = ssl_module.create_default_context() if self.https else None
        self._idle: list[UpstreamConnection] = []
        self._busy = 0  # connections lent out: the replica is in use even while none is idle
        self._sweep: asyncio.TimerHandle | None = None

    async def get(self, timeout: float, fresh: bool = False) -> UpstreamConnection:
        """An idle kept-alive connection (unless `fresh`), else a new one."""
        idle = None if fresh else self.idle()  # the most recently used: the least likely to have been closed
        if idle is not None:
            return idle
        try:
            async with asyncio.timeout(min(CONNECT_TIMEOUT, timeout)):
                _, conn = await self.loop.create_connection(
                    protocol_factory(lambda: UpstreamConnection(self)), self.host, self.port, ssl=self._ssl)
        except (OSError, TimeoutError) as e:
            raise ConnectError(f"cannot connect to {self.host}:{self.port}: {e!r}",
                               isinstance(e, TimeoutError)) from e
        return self._lend(cast(UpstreamConnection, conn))

    def idle(self) -> UpstreamConnection | None:
        """An idle kept-alive connection, if there is one (no waiting)."""
        while self._idle:
            conn = self._idle.pop()
            conn.idle = False
            if not conn.closed:
                return self._lend(conn)
        return None

    def _lend(self, conn: UpstreamConnection) -> UpstreamConnection:
        conn.busy = True
        self._busy += 1
        return conn

    def _returned(self, conn: UpstreamConnection) -> None:
        if conn.busy:
            conn.busy = False
            self._busy -= 1

    def put(self, conn: UpstreamConnection) -> None:
        self._returned(conn)
        conn.idle_since = monotonic()
        conn.idle = True
        self._idle.append(conn)
        if self._sweep is None:
            self._sweep = self.loop.call_later(IDLE_SECONDS, self._close_idle)

    def forget(self, conn: UpstreamConnection) -> None:
        self._returned(conn)
        if conn.idle:
            conn.idle = False
            self._idle.remove(conn)

    def _close_idle(self) -> None:
        self._sweep = None
        cutoff = monotonic() - IDLE_SECONDS
        stale = [c for c in self._idle if c.idle_since <= cutoff]
        self._idle = [c for c in self._idle if c.idle_since > cutoff]
        for conn in stale:
            conn.idle = False
            conn.close()
        if self._idle:
            self._sweep = self.loop.call_later(IDLE_SECONDS, self._close_idle)
        elif not self._busy:
            # e.g. a replica gone from the backend: forget it. Not while connections are lent out: they would
            # come back to a forgotten set, and every request after would open a new connection.
            self._on_unused(self)

    def close(self) -> None:
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.idle = False
            conn.close()


class UpstreamClient:
    """Connections per replica URL, created on first use."""

    def __init__(self, drop_headers: frozenset[bytes] = frozenset()) -> None:
        """`drop_headers`: lower-case names of answer headers the caller never passes on, dropped with the
        hop-by-hop ones as the answer is parsed."""
        self._replicas: dict[str, ReplicaConnections] = {}
        self._drop = HOP_BY_HOP | drop_headers

    def connections(self, url: str) -> ReplicaConnections:
        replica = self._replicas.get(url)
        if replica is None:
            replica = ReplicaConnections(url, asyncio.get_running_loop(), self._forget, self._drop)
            self._replicas[url] = replica
        return replica

    def _forget(self, replica: ReplicaConnections) -> None:
        if self._replicas.get(replica.url) is replica:
            del self._replicas[replica.url]

    def close(self) -> None:
        for replica in self._replicas.values():
            replica.close()
        self._replicas.clear()

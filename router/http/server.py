"""The scoring port's HTTP/1.1 server: an asyncio protocol around httptools' request parser.

aiohttp's server was ~85 us of the router's ~200 us of CPU per request (request and response objects,
a stream reader, a payload writer, middleware and router machinery, and a task and several futures each
time). A proxy needs less: parse a head, hand the body on as a stream, write an answer. httptools (the
parser uvicorn uses) does the parsing; this module keeps the connection's state and the rules a head must
meet before a handler sees it:

- the handler is called once the read that completed the head is parsed (with the whole body when it came
  with the head). It answers at once, or takes the request on in callbacks (`Response.wait_on`), or returns
  a coroutine, which runs in a task: then the body streams;
- requests pipelined behind the one being answered wait in order, with the socket paused;
- keep-alive, closed after `Connection: close`, an HTTP/1.0 request without keep-alive, an answer sent
  before the request body was read whole, or idle for `keep_alive_seconds`;
- a client that leaves cancels its handler (the proxy then keeps the replica's slot until it answers);
- the limits (`settings.HttpLimits`): head size and header count (431), a body that does not arrive in
  time (408), an answer the client does not read (cut off). Timeouts are checked by one sweep per server,
  not a timer per request, so holding hostile clients costs the request path nothing;
- `shutdown`: stop listening, close idle connections, let answers in progress finish up to a deadline.

The admin port stays on aiohttp: it is off the request path.
"""
from __future__ import annotations

import asyncio
import fcntl
import inspect
import logging
import ssl as ssl_module
import struct
import termios
from collections import deque
from http import HTTPStatus
from typing import Any, Awaitable, Callable, Final, Optional

import httptools

from ..settings import HttpLimits
from .errors import BadRequestBody, BodyTimeout, ClientGone
from .request import Request
from .response import TEXT, Response
from .connection import ClientConnection
from .writeflow import protocol_factory

log = logging.getLogger("router.http")
# Answers, or takes the request on, and returns None; or returns the coroutine that will (run in a task).
# An `async def` handler is one of these.
Handler = Callable[[Request, Response], Optional[Awaitable[None]]]

SWEEP_SECONDS = 1.0  # how often timeouts are checked (one timer per server, not per request)
LINGER_SECONDS: Final = 2.0  # after an answer to a request whose body was not read, how long to discard the rest
MAX_PIPELINED: Final = 32  # requests waiting behind the one being answered; more is 400 and the connection closes
# Headers a request may carry once. A second Transfer-Encoding or Content-Length is an attack on the
# framing (httptools and this module could read different bodies); a second Host or Authorization leaves
# open who is asked, or who asks (RFC 9112 3.2, RFC 9110 5.3).
SINGLE_HEADERS: Final = frozenset((b"host", b"authorization", b"transfer-encoding", b"content-length"))


class BadHead(Exception):
    """A head breaks a rule. Raised from a parser callback; httptools hands it back as the `__context__`
    of an HttpParserCallbackError."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class HttpConnection(ClientConnection):
    """asyncio's protocol for one client connection (by its methods: not a subclass of `asyncio.Protocol`, so
    that mypyc makes it a native class, `router/build_native.py`)."""

    def __init__(self, server: "HttpServer") -> None:
        self._server = server
        self.loop = server.loop
        self._limits = server.limits
        # Read on every header: native fields, not attribute lookups on the settings model.
        self._max_header_bytes: int = server.limits.max_header_bytes
        self._max_header_count: int = server.limits.max_header_count
        self._seconds_per_body_byte = 1 / server.limits.min_body_bytes_per_second
        self._parser = httptools.HttpRequestParser(self)
        self.closing = False  # no further requests: answer the current one and close
        self.idle_since = self.loop.time()
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._index: dict[bytes, bytes] = {}
        self._head_bytes = 0
        self._parsing: Request | None = None  # the request whose head or body is being received
        self._active: Request | None = None  # the request being answered
        self._task: asyncio.Task | None = None
        self._work: Awaitable[None] | None = None  # what `_task` runs
        self._call: Callable[[], None] | None = None  # cancels the request in progress in callbacks
        self._feeding = False  # in the parser: a request whose head is in waits for the rest of the read
        self._starting: Request | None = None
        self._pending: deque[Request] = deque()  # pipelined requests behind the active one
        self._paused_for_body = False
        self._reading_paused = False
        self._paused_at = 0.0
        self._lost = False
        self._discard = False  # after bad input, or while lingering: data is dropped unparsed
        self._linger: asyncio.TimerHandle | None = None
        self._unsent_since: float | None = None  # answer bytes wait in our buffer, none sent since (the sweep's view)
        self._sent = 0  # bytes the client had taken at the last sweep
        self._in_head = False  # headers now are the head's; after it, a chunked body's trailers (ignored)

    # ---- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        # An answer is read from the replica into this buffer up to this size even while the client
        # reads nothing, so the replica's slot is free as soon as its answer is in.
        transport.set_write_buffer_limits(high=self._limits.response_buffer_bytes)
        self._server.connections.add(self)

    def data_received(self, data: bytes) -> None:
        if self._discard:
            return
        self._feeding = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # No protocol switches here: answer what was asked (without the upgrade), then close.
            self.closing = self._discard = True
        except httptools.HttpParserError as e:
            self._bad_input(e)
        self._feeding = False
        request = self._starting
        if request is not None:
            self._starting = None
            self._launch(request)
        self._update_reading()

    def eof_received(self) -> None:
        """The client half-closed: asyncio then closes the transport (as `asyncio.Protocol`'s default)."""

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = self.closing = True
        self._server.connections.discard(self)
        if self._linger is not None:
            self._linger.cancel()
        gone = ClientGone("the client closed the connection")
        for request in (self._parsing, self._active, *self._pending):
            if request is not None:
                request.fail(gone)
        self._pending.clear()
        if self._task is not None:
            self._task.cancel()  # nobody is left to answer
            self._task = None
            work = self._work
            if inspect.iscoroutine(work) and inspect.getcoroutinestate(work) == inspect.CORO_CREATED:
                work.close()  # cancelled before its first step, it never runs: without a warning that it did not
        if self._call is not None:
            cancel, self._call = self._call, None
            cancel()
        self._fail_drain()
        self._server.check_quiet()

    @property
    def answering(self) -> bool:
        """A request of this connection is being answered."""
        return self._active is not None

    @property
    def _write_closed(self) -> bool:
        return self._lost

    def _closed_error(self) -> Exception:
        return ClientGone("the client closed the connection")

    # ---- httptools callbacks -----------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._url, self._headers, self._index, self._head_bytes = b"", [], {}, 0
        self._in_head = True

    def on_url(self, url: bytes) -> None:
        self._url += url  # may come in pieces when the head spans reads
        self._head_bytes += len(url)
        if self._head_bytes > self._max_header_bytes:
            raise BadHead(431, "request line and headers too large")

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self._in_head:
            return  # a chunked body's trailer: never part of the head the handler and the replica see
        self._headers.append((name, value))
        self._head_bytes += len(name) + len(value) + 4
        if self._head_bytes > self._max_header_bytes or len(self._headers) > self._max_header_count:
            raise BadHead(431, "request line and headers too large")
        # The one view of the head that routing, auth and framing all read: the first of repeated
        # headers (as aiohttp's `get`), and no repeats at all of the ones that must be single.
        lowered = name.lower()
        if lowered not in self._index:
            self._index[lowered] = value
        elif lowered in SINGLE_HEADERS:
            raise BadHead(400, f"more than one {lowered.decode()} header")

    def on_headers_complete(self) -> None:
        parser = self._parser
        self._in_head = False
        if self.closing:
            self._parsing = None  # the connection ends after the current answer; ignore what follows
            return
        version = parser.get_http_version()
        if version != "1.1" and version != "1.0":
            raise BadHead(505, "only HTTP/1.0 and HTTP/1.1 are served")
        index = self._index
        if b"host" not in index and version == "1.1":
            raise BadHead(400, "an HTTP/1.1 request needs a Host header")
        framing = index.get(b"transfer-encoding")
        if framing is not None and (version == "1.0" or framing.strip(b" ").lower() != b"chunked"):
            # httptools frames `gzip` then `chunked` as chunked; the only coding a proxy may pass on
            # without decoding is one `chunked`, so anything else is refused rather than guessed at.
            raise BadHead(400, "Transfer-Encoding must be a single 'chunked' (HTTP/1.1 only)")
        request = Request(self, parser.get_method(), self._url, self._headers, index, version == "1.1",
                          parser.should_keep_alive())
        self._parsing = request
        if self._active is None:
            self._start(request)
        elif len(self._pending) < MAX_PIPELINED:
            self._pending.append(request)
        else:  # one read can hold thousands of small requests: more than this is abuse, not pipelining
            self._parsing = None
            raise BadHead(400, "too many pipelined requests")

    def on_body(self, body: bytes) -> None:
        request = self._parsing
        if request is not None:
            # A large body may take longer than the body timeout, as long as it keeps the minimum rate; a
            # trickle earns next to nothing.
            request.body_deadline += len(body) * self._seconds_per_body_byte
            request.feed(body)

    def on_message_complete(self) -> None:
        if self._parsing is not None:
            self._parsing.end()
            self._parsing = None

    # ---- requests and answers ------------------------------------------------------------------

    def _start(self, request: Request) -> None:
        self._active = request
        if request.expects_continue:
            request.body_deadline = float("inf")  # the client waits for `100 Continue`; its time starts then
        elif request.body_exists and not request.complete:  # its body's time runs from its turn
            request.body_deadline = self.loop.time() + self._limits.body_timeout_seconds
        if self._feeding:
            self._starting = request  # the rest of this read may hold its body: the handler sees it whole
        else:
            self._launch(request)

    def _launch(self, request: Request) -> None:
        response = Response(self, request)
        try:
            work = self._server.handler(request, response)
        except Exception:
            log.exception("scoring handler failed")
            response.internal_error()
            return
        if work is not None:
            self.continue_in_task(work, response)

    def wait_on(self, cancel: Callable[[], None]) -> None:
        """The handler answers later, in callbacks; `cancel` if the client leaves first."""
        self._call = cancel

    def continue_in_task(self, work: Awaitable[None], response: Response,
                         cancel: Callable[[], None] | None = None) -> None:
        """The handler goes on in a coroutine (from the start, or after callbacks, whose `cancel` still runs
        if the client leaves: a task cancelled before its first step never runs the coroutine's cleanup)."""
        self._call, self._work = cancel, work
        self._task = self.loop.create_task(self._run(work, response))

    async def _run(self, work: Awaitable[None], response: Response) -> None:
        server = self._server
        server.running += 1
        try:
            await work
            if not response.finished:
                if response.started:
                    response.end()
                else:  # a handler that forgot to answer
                    response.send_text(500, "internal error\n")
        except asyncio.CancelledError:
            response.abort()  # the client left, or shutdown's deadline passed
        except ClientGone:
            pass
        except Exception:
            log.exception("scoring handler failed")
            response.internal_error()
        finally:
            server.running -= 1
            server.check_quiet()

    def response_done(self, response: Response) -> None:
        """The answer is written: on to the next request, or close the connection."""
        request, self._active, self._task, self._call = self._active, None, None, None
        if self._lost or request is None:
            return
        unread = not request.complete or request.failed
        if response.close or self.closing or not request.keep_alive or unread:
            self._close(unread_body=unread)
            return
        if not self._pending:
            self.idle_since = self.loop.time()
        self._start_next()

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._active is None and not self._lost and not self.closing:
            self._start_next()

    def _start_next(self) -> None:
        """Start the next pipelined request, unless the client is not reading its answers (then
        `resume_writing` starts it once it does)."""
        if self._pending and not self._write_paused:
            self._start(self._pending.popleft())
        self._update_reading()

    def _bad_input(self, error: Exception) -> None:
        cause = error.__context__
        if isinstance(cause, BadHead):
            status, reason = cause.status, cause.reason
        elif str(error).startswith("Invalid HTTP version"):
            status, reason = 505, "only HTTP/1.0 and HTTP/1.1 are served"
        else:
            status, reason = 400, "bad request"
        if self._parsing is not None:
            self._parsing.fail(BadRequestBody(str(error)))
        self.closing = self._discard = True
        if self._active is None and not self._lost:
            body = reason.encode() + b"\n"
            self.transport.write(b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n"
                                 b"Connection: close\r\n\r\n%s"
                                 % (status, HTTPStatus(status).phrase.encode(), TEXT[1], len(body), body))
            self._close(unread_body=False)

    def _close(self, unread_body: bool) -> None:
        self.closing = True
        if not unread_body:
            self.transport.close()
            return
        # Closing a socket with unread bytes makes the kernel answer with a reset, which can destroy the
        # answer just written before the client reads it (e.g. a 413). As nginx's lingering close: stop
        # writing, and discard what the client still sends, for a short while.
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self._discard = True
        self._linger = self.loop.call_later(LINGER_SECONDS, self.transport.close)
        self._paused_for_body = False
        self._update_reading()

    # ---- flow control (Request and Response call these) ----------------------------------------

    def body_backlogged(self) -> None:
        self._paused_for_body = True
        self._update_reading()

    def body_drained(self) -> None:
        if self._paused_for_body:
            self._paused_for_body = False
            self._update_reading()

    def _update_reading(self) -> None:
        # Paused while the active body's queue is full, or while a pipelined request waits its turn.
        pause = not self._discard and (self._paused_for_body or bool(self._pending))
        if pause != self._reading_paused and not self._lost:
            self._reading_paused = pause
            if pause:
                self.transport.pause_reading()
                self._paused_at = self.loop.time()
            else:
                self.transport.resume_reading()
                if self._parsing is not None and self._parsing is self._active:
                    # The router held the client back: that time is not the client's to answer for.
                    self._parsing.body_deadline += self.loop.time() - self._paused_at

    def send_continue(self, interim: bool) -> None:
        if self._lost:
            return
        if interim:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        if self._active is not None:  # the client only now starts sending its body
            self._active.body_deadline = self.loop.time() + self._limits.body_timeout_seconds

    def response_aborted(self) -> None:
        """The handler cut its own answer off: nothing to cancel, just drop the connection."""
        self._active, self._task, self._call = None, None, None
        if not self._lost:
            self.transport.abort()

    # ---- timeouts (the server's sweep calls this) ------------------------------------------------

    def sweep(self, now: float) -> None:
        """Close what has waited too long: an answer the client does not read, a body that does not
        arrive, an idle connection (or one holding half a head)."""
        if self._lost:
            return
        limits = self._limits
        unsent = self.transport.get_write_buffer_size()
        if unsent:
            # Progress is bytes the client took since the last sweep (the buffer alone can stay full while
            # the relay refills it as fast as the client reads).
            sent = self.written - unsent - self._kernel_unsent()
            if self._unsent_since is None or sent > self._sent:
                self._unsent_since = now
            self._sent = sent
            if now - self._unsent_since > limits.send_timeout_seconds:
                log.info("cut off a client that read none of %d answer bytes in %.0f s", unsent,
                         limits.send_timeout_seconds)
                self.abort()
                return
        else:
            self._unsent_since = None
        request = self._parsing
        if request is not None and request is self._active and not self._reading_paused \
                and now > request.body_deadline:
            # The handler answers 408 when it next reads the body; what the client still sends is dropped.
            self.closing = self._discard = True
            self._parsing = None
            request.fail(BodyTimeout(f"the body did not arrive within {limits.body_timeout_seconds:g} s"))
        elif self._active is None and self._linger is None and now - self.idle_since > limits.keep_alive_seconds:
            self.shutdown()

    def _kernel_unsent(self) -> int:
        """Bytes in the kernel's send queue the client has not acknowledged (TIOCOUTQ): with a send buffer
        of megabytes, the client reads for seconds before our own buffer moves."""
        sock = self.transport.get_extra_info("socket")
        if sock is None:
            return 0
        try:
            return struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0"))[0]
        except (OSError, ValueError):
            return 0

    # ---- shutdown ------------------------------------------------------------------------------

    def shutdown(self) -> None:
        """Take no further requests; close now if idle, else after the answer in progress."""
        self.closing = True
        if self._active is None and not self._lost:
            self.transport.close()

    def abort(self) -> None:
        """Drop the connection now; `connection_lost` cancels a handler still at work."""
        if not self._lost:
            self.transport.abort()


class HttpServer:
    def __init__(self, handler: Handler, limits: HttpLimits | None = None) -> None:
        self.handler = handler
        self.limits = limits or HttpLimits.model_validate({})
        self.loop = asyncio.get_running_loop()
        self.connections: set[HttpConnection] = set()
        self.running = 0  # handler tasks not yet finished
        self._server: asyncio.Server | None = None
        self._sweep: asyncio.TimerHandle | None = None
        self._quiet: asyncio.Event | None = None  # set during shutdown once nothing is left

    async def listen(self, host: str, port: int, backlog: int = 1024, ssl: "ssl_module.SSLContext | None" = None) -> None:
        self._server = await self.loop.create_server(protocol_factory(lambda: HttpConnection(self)), host, port,
                                                     backlog=backlog, ssl=ssl)
        self._sweep = self.loop.call_later(SWEEP_SECONDS, self.sweep)

    @property
    def port(self) -> int:
        server: Any = self._server  # uvloop's `sockets` is a list where typeshed (and mypyc) expect a tuple
        return server.sockets[0].getsockname()[1]

    def sweep(self) -> None:
        """Every connection's timeouts; runs every SWEEP_SECONDS until the server is closed."""
        now = self.loop.time()
        for conn in list(self.connections):
            conn.sweep(now)
        self._sweep = self.loop.call_later(SWEEP_SECONDS, self.sweep)

    def check_quiet(self) -> None:
        if self._quiet is not None and not self.connections and not self.running:
            self._quiet.set()

    async def shutdown(self, grace: float) -> None:
        """Stop listening, close idle connections, and give answers in progress up to `grace` seconds.
        The sweep goes on meanwhile: a client that sends or reads too slowly is still cut off in time."""
        self._quiet = asyncio.Event()
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections):
            conn.shutdown()
        self.check_quiet()
        try:
            await asyncio.wait_for(self._quiet.wait(), grace)
        except asyncio.TimeoutError:
            answering = sum(1 for conn in self.connections if conn.answering)  # in tasks and in callbacks
            log.warning("%d answers still in progress after %.0f s; cutting them off", answering, grace)
            for conn in list(self.connections):
                conn.abort()
            try:  # cancelled handlers still log their requests
                await asyncio.wait_for(self._quiet.wait(), 1.0)
            except asyncio.TimeoutError:
                pass
        finally:
            if self._sweep is not None:
                self._sweep.cancel()
                self._sweep = None

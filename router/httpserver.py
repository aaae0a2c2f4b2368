"""The scoring port's HTTP/1.1 server: an asyncio protocol around httptools' request parser.

aiohttp's server was ~85 us of the router's ~200 us of CPU per request (request and response objects,
a stream reader, a payload writer, middleware and router machinery, and a task and several futures each
time). A proxy needs less: parse a head, hand the body on as a stream, write an answer. httptools (the
parser uvicorn uses) does the parsing; this module only keeps the connection's state:

- one handler task per request, started as soon as the head is parsed, so the body streams;
- requests pipelined behind the one being answered wait in order, with the socket paused;
- keep-alive, closed after `Connection: close`, an HTTP/1.0 request without keep-alive, an answer sent
  before the request body was read whole, or idle for KEEPALIVE_SECONDS;
- a client that leaves cancels its handler (the proxy then keeps the replica's slot until it answers);
- `shutdown`: stop listening, close idle connections, let answers in progress finish up to a deadline.

The admin port stays on aiohttp: it is off the request path.
"""
from __future__ import annotations

import asyncio
import logging
import ssl as ssl_module
from collections import deque
from typing import Awaitable, Callable

import httptools

from .request import BadRequestBody, ClientGone, Request
from .response import TEXT, Response
from .writeflow import WriteFlow

log = logging.getLogger("router.http")
Handler = Callable[[Request, Response], Awaitable[None]]

MAX_HEAD_BYTES = 64 * 1024  # request line and headers together; more is 431 (httptools sets no limit)
KEEPALIVE_SECONDS = 75.0  # idle connections (or ones holding half a request head) are closed after this
SWEEP_SECONDS = 5.0  # how often idle connections are looked for (one timer per server, not per request)
LINGER_SECONDS = 2.0  # after an answer to a request whose body was not read, how long to discard the rest


class HeadTooLarge(Exception):
    """Raised from a parser callback (httptools hands it back wrapped in HttpParserCallbackError)."""


class HttpConnection(WriteFlow, asyncio.Protocol):
    def __init__(self, server: "HttpServer") -> None:
        self._server = server
        self.loop = server.loop
        self._parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.closing = False  # no further requests: answer the current one and close
        self.idle_since = self.loop.time()
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._head_bytes = 0
        self._parsing: Request | None = None  # the request whose head or body is being received
        self._active: Request | None = None  # the request being answered
        self._task: asyncio.Task | None = None
        self._pending: deque[Request] = deque()  # pipelined requests behind the active one
        self._paused_for_body = False
        self._reading_paused = False
        self._lost = False
        self._discard = False  # after bad input, or while lingering: data is dropped unparsed
        self._linger: asyncio.TimerHandle | None = None

    # ---- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self._server.connections.add(self)

    def data_received(self, data: bytes) -> None:
        if self._discard:
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # No protocol switches here: answer what was asked (without the upgrade), then close.
            self.closing = self._discard = True
        except httptools.HttpParserError as e:
            self._bad_input(e)
        self._update_reading()

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
        self._fail_drain()
        self._server.check_quiet()

    @property
    def _write_closed(self) -> bool:
        return self._lost

    def _closed_error(self) -> Exception:
        return ClientGone("the client closed the connection")

    # ---- httptools callbacks -----------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._url, self._headers, self._head_bytes = b"", [], 0

    def on_url(self, url: bytes) -> None:
        self._url += url  # may come in pieces when the head spans reads
        self._head_bytes += len(url)
        if self._head_bytes > MAX_HEAD_BYTES:
            raise HeadTooLarge()

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))
        self._head_bytes += len(name) + len(value) + 4
        if self._head_bytes > MAX_HEAD_BYTES:
            raise HeadTooLarge()

    def on_headers_complete(self) -> None:
        parser = self._parser
        if self.closing:
            self._parsing = None  # the connection ends after the current answer; ignore what follows
            return
        request = Request(self, parser.get_method(), self._url, self._headers,
                          parser.get_http_version() == "1.1", parser.should_keep_alive())
        self._parsing = request
        if self._active is None:
            self._start(request)
        else:
            self._pending.append(request)

    def on_body(self, body: bytes) -> None:
        if self._parsing is not None:
            self._parsing.feed(body)

    def on_message_complete(self) -> None:
        if self._parsing is not None:
            self._parsing.end()
            self._parsing = None

    # ---- requests and answers ------------------------------------------------------------------

    def _start(self, request: Request) -> None:
        self._active = request
        self._task = self.loop.create_task(self._run(request, Response(self, request)))

    async def _run(self, request: Request, response: Response) -> None:
        server = self._server
        server.running += 1
        try:
            await server.handler(request, response)
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
            if not response.started:
                response.close = True
                response.send_text(500, "internal error\n")
            else:
                response.abort()
        finally:
            server.running -= 1
            server.check_quiet()

    def response_done(self, response: Response) -> None:
        """The answer is written: on to the next request, or close the connection."""
        request, self._active, self._task = self._active, None, None
        if self._lost:
            return
        if response.close or self.closing or not request.keep_alive or not request.complete:
            self._close(unread_body=not request.complete)
            return
        if self._pending:
            self._start(self._pending.popleft())
        else:
            self.idle_since = self.loop.time()
        self._update_reading()

    def _bad_input(self, error: Exception) -> None:
        if self._parsing is not None:
            self._parsing.fail(BadRequestBody(str(error)))
        self.closing = self._discard = True
        if self._active is None and not self._lost:
            status = 431 if isinstance(error.__context__, HeadTooLarge) else 400
            self.transport.write(b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: 12\r\n"
                                 b"Connection: close\r\n\r\nbad request\n"
                                 % (status, b"Request Header Fields Too Large" if status == 431 else b"Bad Request",
                                    TEXT[1]))
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
            else:
                self.transport.resume_reading()

    def send_continue(self) -> None:
        if not self._lost:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def response_aborted(self) -> None:
        """The handler cut its own answer off: nothing to cancel, just drop the connection."""
        self._active, self._task = None, None
        if not self._lost:
            self.transport.abort()

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

    @property
    def idle(self) -> bool:
        return self._active is None and self._linger is None


class HttpServer:
    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.loop = asyncio.get_running_loop()
        self.connections: set[HttpConnection] = set()
        self.running = 0  # handler tasks not yet finished
        self._server: asyncio.AbstractServer | None = None
        self._sweep: asyncio.TimerHandle | None = None
        self._quiet: asyncio.Event | None = None  # set during shutdown once nothing is left

    async def listen(self, host: str, port: int, backlog: int = 1024, ssl: "ssl_module.SSLContext | None" = None) -> None:
        self._server = await self.loop.create_server(lambda: HttpConnection(self), host, port, backlog=backlog,
                                                     ssl=ssl)
        self._sweep = self.loop.call_later(SWEEP_SECONDS, self._close_idle)

    @property
    def port(self) -> int:
        return self._server.sockets[0].getsockname()[1]

    def _close_idle(self) -> None:
        cutoff = self.loop.time() - KEEPALIVE_SECONDS
        for conn in [c for c in self.connections if c.idle and c.idle_since < cutoff]:
            conn.shutdown()
        self._sweep = self.loop.call_later(SWEEP_SECONDS, self._close_idle)

    def check_quiet(self) -> None:
        if self._quiet is not None and not self.connections and not self.running:
            self._quiet.set()

    async def shutdown(self, grace: float) -> None:
        """Stop listening, close idle connections, and give answers in progress up to `grace` seconds."""
        self._quiet = asyncio.Event()
        if self._server is not None:
            self._server.close()
        if self._sweep is not None:
            self._sweep.cancel()
        for conn in list(self.connections):
            conn.shutdown()
        self.check_quiet()
        try:
            await asyncio.wait_for(self._quiet.wait(), grace)
        except asyncio.TimeoutError:
            log.warning("%d answers still in progress after %.0f s; cutting them off", self.running, grace)
            for conn in list(self.connections):
                conn.abort()
            try:  # cancelled handlers still log their requests
                await asyncio.wait_for(self._quiet.wait(), 1.0)
            except asyncio.TimeoutError:
                pass

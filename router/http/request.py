"""One request on the scoring port as its handler sees it: the head, and the body as a stream.

The connection (`server.HttpConnection`, seen here as `connection.ClientConnection`) fills it in from
httptools' callbacks. The body is queued as it
arrives and read whole or chunk by chunk, with the client's socket paused while the consumer is slower
(`readflow.ReadFlow`), so a slow replica slows the client down instead of filling the router's memory.
"""
from __future__ import annotations

import asyncio
from collections import deque

import httptools

from .connection import ClientConnection
from .readflow import ReadFlow


class Request(ReadFlow):
    __slots__ = ("method", "path", "query", "headers", "http11", "keep_alive", "content_length",
                 "chunked", "complete", "body_deadline", "_index", "_expect_continue", "_conn", "_chunks",
                 "_buffered", "_whole", "_waiter", "_error")

    def __init__(self, conn: ClientConnection, method: bytes, target: bytes, headers: list[tuple[bytes, bytes]],
                 index: dict[bytes, bytes], http11: bool, keep_alive: bool) -> None:
        self.method = method
        raw_path, _, self.query = target.partition(b"?")  # the query goes on to the replica untouched
        if not raw_path.startswith(b"/"):
            raw_path, self.query = _absolute_form(target)
        # Routed as sent: no percent-decoding, so `%2F` never becomes a `/` that moves a request to
        # another route (service names are plain [a-z0-9-], and an encoded one is not a name).
        self.path = raw_path.decode("utf-8", "surrogateescape")
        self.headers = headers  # raw (name, value) pairs, in order
        self.http11 = http11
        self.keep_alive = keep_alive
        # Header lookups are by lower-case name; the first of repeated headers wins (as aiohttp's `get`).
        # The connection built this index and checked that framing headers are not repeated, so the
        # framing read here is the one httptools applies.
        self._index = index
        length = index.get(b"content-length")
        self.content_length = int(length) if length is not None else None  # httptools checked the digits
        self.chunked = b"transfer-encoding" in index  # the connection let only a single `chunked` through
        self.complete = False  # the whole body has arrived (or the request failed)
        self.body_deadline = 0.0  # loop time by which the body must have arrived (the connection's sweep)
        expect = index.get(b"expect")
        self._expect_continue = http11 and expect is not None and expect.lower() == b"100-continue"
        self._conn = conn
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._whole = False  # `read` collects the body: no flow control, it needs all of it
        self._waiter: asyncio.Future | None = None
        self._error: BaseException | None = None

    def header(self, name: bytes) -> bytes | None:
        """A header's value by lower-case name."""
        return self._index.get(name)

    @property
    def expects_continue(self) -> bool:
        """The client waits for `100 Continue` before it sends the body (not yet sent)."""
        return self._expect_continue

    @property
    def failed(self) -> bool:
        """The body broke off (bad framing, too slow, the client left): no answer can use it."""
        return self._error is not None

    @property
    def body_exists(self) -> bool:
        return self.chunked or bool(self.content_length)

    async def read(self) -> bytes:
        """The whole body (for bodies known to be small: it is held in memory)."""
        if not self._whole:
            self._whole = True
            self._conn.body_drained()  # in case the socket was paused for this body
        return await super().read()

    def take(self) -> bytes:
        """The whole body, once it has arrived: `read` without the wait."""
        self._conn.body_drained()  # in case the socket was paused for this body
        return super().take()

    def put_back(self, body: bytes) -> None:
        """Return a whole body taken with `take` that could not be sent after all: `read` gives it again."""
        if body:
            self._chunks.appendleft(body)
            self._buffered += len(body)

    # ---- ReadFlow ----------------------------------------------------------------------------

    @property
    def _body_done(self) -> bool:
        return self.complete

    def raise_if_failed(self) -> None:
        """Raise what ended the body (BadRequestBody, BodyTimeout or ClientGone), if anything did."""
        if self._error is not None:
            raise self._error

    def _raise_if_failed(self) -> None:  # ReadFlow's hook
        self.raise_if_failed()

    def _backlogged(self) -> None:
        if not self._whole:  # `read` wants all of it: pausing the client would stall it
            self._conn.body_backlogged()

    def _drained(self) -> None:
        self._conn.body_drained()

    # ---- the connection's side ---------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        self._queue(data)

    def end(self) -> None:
        self.complete = True
        self._wake()

    def fail(self, error: BaseException) -> None:
        if not self.complete:
            self._error = error
            self.complete = True
            self._chunks.clear()
            self._buffered = 0
            self._wake()

    async def _wait(self) -> None:
        if self._expect_continue:
            # The client waits for this before sending the body: only invite it once the handler wants
            # the body, so a refused request (401, 413, 404) never makes the client send it.
            self._expect_continue = False
            self._conn.send_continue(interim=not self._chunks)  # a client that sent anyway needs no invitation
        self._waiter = self._conn.loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None


def _absolute_form(target: bytes) -> tuple[bytes, bytes]:
    """Path and query of `http://host/path?query`, which a server must accept too (RFC 9112 3.2.2)."""
    try:
        url = httptools.parse_url(target)
    except httptools.HttpParserInvalidURLError:
        return target, b""  # `*` or garbage: no route matches it
    return url.path or b"/", url.query or b""

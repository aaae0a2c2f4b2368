"""The answer to one request on the scoring port: whole (`send`, one write) or streamed (`start`, `write`,
`end`), with `Content-Length` when the length is known and chunked encoding otherwise.

Headers are (bytes, bytes) pairs and are written as given: the replica's come from httptools, which never
yields a CR or LF inside a name or value, and the router's own are fixed or validated.
"""
from __future__ import annotations

from email.utils import formatdate
from http import HTTPStatus
from typing import Awaitable, Callable, Final, Iterable

from ..clock import wall_time
from .connection import ClientConnection
from .request import Request

Headers = Iterable[tuple[bytes, bytes]]
STATUS_LINES: Final = {s.value: b"HTTP/1.1 %d %s\r\n" % (s.value, s.phrase.encode()) for s in HTTPStatus}
TEXT: Final = (b"Content-Type", b"text/plain; charset=utf-8")


class _Date:
    """The Date header line, formatted once a second rather than per response."""
    second = 0
    line = b""


_date: Final = _Date()


def _status_line(status: int) -> bytes:
    return STATUS_LINES.get(status) or b"HTTP/1.1 %d Unknown\r\n" % status


def _date_line() -> bytes:
    now = int(wall_time())
    if now != _date.second:
        _date.second, _date.line = now, b"Date: %s\r\n" % formatdate(now, usegmt=True).encode()
    return _date.line


class Response:
    __slots__ = ("_conn", "_request", "status", "started", "finished", "close", "_chunked")

    def __init__(self, conn: ClientConnection, request: Request) -> None:
        self._conn = conn
        self._request = request
        self.status = 0
        self.started = False  # the status line is written: the answer can no longer change
        self.finished = False
        self.close = False  # end the connection after this answer (e.g. after 413, whose body is unread)
        self._chunked = False

    def send(self, status: int, headers: Headers, body: bytes = b"") -> None:
        """The whole answer in one write."""
        # 204 and 304 have no body and must not announce one.
        framing = b"" if status == 204 or status == 304 else b"Content-Length: %d\r\n" % len(body)
        parts = self._head(status, headers, framing)
        if self._request.method != b"HEAD":
            parts.append(body)
        self._conn.write(b"".join(parts))
        self._finish()

    def send_text(self, status: int, text: str, headers: Headers = ()) -> None:
        self.send(status, [TEXT, *headers], text.encode())

    def start(self, status: int, headers: Headers, length: int | None = None) -> None:
        """Write the status line and headers; the body follows with `write` and `end`."""
        if length is not None:
            framing = b"Content-Length: %d\r\n" % length
        elif self._request.http11:
            framing, self._chunked = b"Transfer-Encoding: chunked\r\n", True
        else:  # an HTTP/1.0 client knows no chunks: the body ends when the connection does
            framing, self.close = b"", True
        self._conn.write(b"".join(self._head(status, headers, framing)))

    def write(self, data: bytes) -> None:
        if data:
            if self._chunked:
                self._conn.writelines((b"%x\r\n" % len(data), data, b"\r\n"))
            else:
                self._conn.write(data)

    async def drain(self) -> None:
        """Wait while the client's socket buffer is full (the download's flow control)."""
        await self._conn.drain()

    def end(self) -> None:
        if self._chunked:
            self._conn.write(b"0\r\n\r\n")
        self._finish()

    def internal_error(self) -> None:
        """A failure of the router's own code cut the answer short: 500 if nothing was sent yet, else the
        connection is cut so the client sees an incomplete answer."""
        if not self.started:
            self.close = True
            self.send_text(500, "internal error\n")
        else:
            self.abort()

    def abort(self) -> None:
        """Cut the connection: the client sees an incomplete answer (its status line is gone already)."""
        if not self.finished:
            self.finished = True
            self._conn.response_aborted()

    def wait_on(self, cancel: Callable[[], None]) -> None:
        """The handler answers later, from callbacks (no task); `cancel` runs if the client leaves first."""
        self._conn.wait_on(cancel)

    def continue_in_task(self, work: Awaitable[None], cancel: Callable[[], None]) -> None:
        """The handler, so far in callbacks, goes on in the coroutine `work` (it must wait for something);
        `cancel` runs if the client leaves before `work` has started (after, the task is cancelled)."""
        self._conn.continue_in_task(work, self, cancel)

    def _head(self, status: int, headers: Headers, framing: bytes) -> list[bytes]:
        self.status, self.started = status, True
        parts = [_status_line(status)]
        for name, value in headers:
            parts += (name, b": ", value, b"\r\n")
        parts += (framing, _date_line())
        if self.close or not self._request.keep_alive or self._conn.closing:
            self.close = True
            parts.append(b"Connection: close\r\n\r\n")
        elif not self._request.http11:
            parts.append(b"Connection: keep-alive\r\n\r\n")  # HTTP/1.0 keeps a connection only when told
        else:
            parts.append(b"\r\n")
        return parts

    def _finish(self) -> None:
        self.finished = True
        self._conn.response_done(self)

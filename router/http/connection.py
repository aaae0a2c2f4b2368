"""What a request and its answer need from the client connection that carries them.

`request.Request` and `response.Response` are made by `server.HttpConnection` and call back into it; they
know it only through this Protocol, so neither imports the server.
"""
from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Awaitable, Callable, Protocol

if TYPE_CHECKING:
    from .response import Response


class ClientConnection(Protocol):
    loop: asyncio.AbstractEventLoop
    closing: bool  # no further requests: the answer in progress is the last

    # ---- the request body's flow control -------------------------------------------------------
    def body_backlogged(self) -> None:
        """The body's consumer is behind: stop reading the client's socket."""

    def body_drained(self) -> None:
        """The consumer caught up: read the client's socket again."""

    def send_continue(self, interim: bool) -> None:
        """The handler wants the body of an `Expect: 100-continue` request: its time starts now, and
        `100 Continue` is sent when `interim` (nothing of the body came yet)."""

    # ---- the answer --------------------------------------------------------------------------
    def write(self, data: bytes) -> None: ...

    def writelines(self, data: tuple[bytes, ...]) -> None: ...

    async def drain(self) -> None:
        """Wait while the client's socket buffer is full."""

    def response_done(self, response: "Response") -> None:
        """The answer is written: on to the next request, or close."""

    def response_aborted(self) -> None:
        """The answer was cut off: drop the connection."""

    # ---- how the handler goes on -----------------------------------------------------------
    def wait_on(self, cancel: Callable[[], None]) -> None:
        """The handler answers later, in callbacks; `cancel` if the client leaves first."""

    def continue_in_task(self, work: Awaitable[None], response: "Response",
                         cancel: Callable[[], None] | None = None) -> None:
        """The handler goes on in a coroutine, run in a task (`cancel` as for `wait_on`, until it starts)."""

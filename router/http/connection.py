"""What a request and its answer need from the client connection that carries them.

`request.Request` and `response.Response` are made by `server.HttpConnection` and call back into it; they
know it only through this base class, so neither imports the server. A base class rather than a Protocol:
compiled (router/build_native.py), a call through it is a direct call through the class's vtable, where a
Protocol's is a generic Python method call.
"""
from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Awaitable, Callable

from .writeflow import WriteFlow

if TYPE_CHECKING:
    from .response import Response


class ClientConnection(WriteFlow):
    """The answer is written with WriteFlow's `write`, `writelines` and `drain`."""

    loop: asyncio.AbstractEventLoop
    closing: bool  # no further requests: the answer in progress is the last

    # ---- the request body's flow control -------------------------------------------------------
    def body_backlogged(self) -> None:
        """The body's consumer is behind: stop reading the client's socket."""
        raise NotImplementedError

    def body_drained(self) -> None:
        """The consumer caught up: read the client's socket again."""
        raise NotImplementedError

    def send_continue(self, interim: bool) -> None:
        """The handler wants the body of an `Expect: 100-continue` request: its time starts now, and
        `100 Continue` is sent when `interim` (nothing of the body came yet)."""
        raise NotImplementedError

    # ---- the answer --------------------------------------------------------------------------
    def response_done(self, response: Response) -> None:
        """The answer is written: on to the next request, or close."""
        raise NotImplementedError

    def response_aborted(self) -> None:
        """The answer was cut off: drop the connection."""
        raise NotImplementedError

    # ---- how the handler goes on -----------------------------------------------------------
    def wait_on(self, cancel: Callable[[], None]) -> None:
        """The handler answers later, in callbacks; `cancel` if the client leaves first."""
        raise NotImplementedError

    def continue_in_task(self, work: Awaitable[None], response: Response,
                         cancel: Callable[[], None] | None = None) -> None:
        """The handler goes on in a coroutine, run in a task (`cancel` as for `wait_on`, until it starts)."""
        raise NotImplementedError

"""Read-side flow control, shared by the two bodies the router relays: a client's request body
(`request.Request`) and a replica's response body (`upstream.Exchange`).

The body arrives from one socket and is queued for one consumer, who reads it whole (`read`, for bodies
known to be small) or chunk by chunk (`next_chunk`). While more than HIGH_WATER bytes wait, the sending socket
is not read; below LOW_WATER it is read again. So the slower side sets the pace and the router's memory
holds at most about HIGH_WATER per body. (`writeflow.WriteFlow` is the other direction.)
"""
from __future__ import annotations

import asyncio
from collections import deque

HIGH_WATER = 256 * 1024  # stop reading the sender's socket while this much body waits
LOW_WATER = 64 * 1024  # and read it again once the queue is below this


class ReadFlow:
    _chunks: deque[bytes]
    _buffered: int
    _waiter: asyncio.Future | None

    # ---- what each body says about itself ----------------------------------------------------

    @property
    def _body_done(self) -> bool:
        """The whole body is queued, or it failed."""
        raise NotImplementedError

    def _raise_if_failed(self) -> None:
        raise NotImplementedError

    def _backlogged(self) -> None:
        """HIGH_WATER bytes wait: stop reading the sender's socket."""
        raise NotImplementedError

    def _drained(self) -> None:
        """Below LOW_WATER: read the sender's socket again."""
        raise NotImplementedError

    async def _wait(self) -> None:
        """Until `_wake` (more body, its end, or a failure)."""
        raise NotImplementedError

    # ---- the consumer's side -----------------------------------------------------------------

    async def read(self) -> bytes:
        """The whole body (held in memory)."""
        while not self._body_done:
            await self._wait()
        self._raise_if_failed()
        return self.take()

    def take(self) -> bytes:
        """What is queued, all of it, without waiting: the whole body once it is done and did not fail."""
        body = b"".join(self._chunks)
        self._chunks.clear()
        self._buffered = 0
        return body

    async def next_chunk(self) -> bytes | None:
        """The body's next chunk as it arrives (None at its end), with the sender paused while the consumer
        is slower."""
        while True:
            if self._chunks:
                chunk = self._chunks.popleft()
                self._buffered -= len(chunk)
                if self._buffered < LOW_WATER:
                    self._drained()
                return chunk
            if self._body_done:
                self._raise_if_failed()
                return None
            await self._wait()

    # ---- the socket's side -------------------------------------------------------------------

    def _queue(self, data: bytes) -> None:
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered >= HIGH_WATER:
            self._backlogged()
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

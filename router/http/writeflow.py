"""Write-side flow control, shared by the router's two asyncio protocols (client side and replica side).

asyncio calls `pause_writing` / `resume_writing` as a transport's buffer crosses its water marks; `drain`
waits for the second, so a large body streams at the slower side's pace instead of piling up in memory.
Writes after the peer has gone are dropped: the writer learns it at its next `drain`.
"""
from __future__ import annotations

import asyncio
from typing import Callable, cast


def protocol_factory(make: Callable[[], "WriteFlow"]) -> Callable[[], asyncio.Protocol]:
    """`make` as `create_server`'s or `create_connection`'s protocol factory: the router's connections are
    asyncio protocols by their methods, not by their base (so that mypyc makes them native classes)."""
    return cast("Callable[[], asyncio.Protocol]", make)


class WriteFlow:
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    _write_paused = False
    _drain: asyncio.Future | None = None
    written = 0  # bytes handed to the transport so far (sent = written - its buffer: the send timeout's progress)

    @property
    def _write_closed(self) -> bool:
        raise NotImplementedError

    def _closed_error(self) -> Exception:
        raise NotImplementedError

    def write(self, data: bytes) -> None:
        if not self._write_closed:
            self.written += len(data)
            self.transport.write(data)

    def writelines(self, data: tuple[bytes, ...]) -> None:
        if not self._write_closed:
            self.written += sum(map(len, data))
            self.transport.writelines(data)

    async def drain(self) -> None:
        if self._write_closed:
            raise self._closed_error()
        if self._write_paused:
            self._drain = self.loop.create_future()
            await self._drain

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    def _fail_drain(self) -> None:
        """The connection is gone: a writer waiting in `drain` gets the error."""
        if self._drain is not None and not self._drain.done():
            self._drain.set_exception(self._closed_error())

"""One JSON line per scoring request, written in small batches.

Going through `logging` and one write per line cost about a third of the router's time per request;
collecting lines and writing them every FLUSH_SECONDS (or every MAX_LINES) keeps logs near real time
for a fraction of that. Records never hold bodies or keys: the caller passes only the fields below.
"""
from __future__ import annotations

import asyncio
import sys
from json.encoder import encode_basestring_ascii as _quote  # json's own C string escaper
from typing import TextIO

FLUSH_SECONDS = 0.2
MAX_LINES = 256


def request_line(now: float, request_id: str, service: str, version: str | None, method: str, path: str,
                 status: int, replica: str | None, retries: int, queue_ms: float, upstream_ms: float,
                 total_ms: float) -> str:
    """The request's JSON log line, formatted directly: `json.dumps` of a dict was ~8 % of a request.

    Every string goes through json's escaper, so a path or id cannot break out of its field. The few values
    that repeat (service, version, method, replica) are escaped once and remembered.
    """
    # No format specs in the f-string: compiled (mypyc), one would turn the whole line into a `str.format`
    # call that parses its template on every request; `%` formats each number alone.
    return (f'{{"time":{"%.3f" % now},"requestId":{_quote(request_id)},"service":{_quoted(service)},'
            f'"version":{_quoted(version)},"method":{_quoted(method)},'
            f'"path":{_quote(path)},"status":{status},'
            f'"replica":{_quoted(replica)},"retries":{retries},'
            f'"queueMs":{"%.2f" % queue_ms},"upstreamMs":{"%.2f" % upstream_ms},"totalMs":{"%.2f" % total_ms}}}')


_QUOTED: dict[str | None, str] = {None: "null"}
_QUOTED_MAX = 4096  # replicas come and go: start afresh rather than grow without bound


def _quoted(value: str | None) -> str:
    quoted = _QUOTED.get(value)
    if quoted is None:
        if len(_QUOTED) >= _QUOTED_MAX:
            _QUOTED.clear()
            _QUOTED[None] = "null"
        assert value is not None  # always in the cache
        quoted = _QUOTED[value] = _quote(value)
    return quoted


class AccessLog:
    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._lines: list[str] = []
        self._scheduled: asyncio.TimerHandle | None = None

    def write(self, line: str) -> None:
        self._lines.append(line)
        if len(self._lines) >= MAX_LINES:
            self.flush()
        elif self._scheduled is None:
            self._scheduled = asyncio.get_running_loop().call_later(FLUSH_SECONDS, self.flush)

    def flush(self) -> None:
        if self._scheduled is not None:
            self._scheduled.cancel()
            self._scheduled = None
        if self._lines:
            stream = self._stream or sys.stderr  # looked up late, so test capture and redirection work
            stream.write("\n".join(self._lines) + "\n")
            stream.flush()
            self._lines.clear()

"""One JSON line per scoring request, written in small batches.

Going through `logging` and one write per line cost about a third of the router's time per request;
collecting lines and writing them every FLUSH_SECONDS (or every MAX_LINES) keeps logs near real time
for a fraction of that. Records never hold bodies or keys: the caller passes only the fields below.
"""
from __future__ import annotations

import asyncio
import sys
from json.encoder import encode_basestring_ascii
from typing import Final, TextIO

_quote: Final = encode_basestring_ascii  # json's own C string escaper (Final: a C static, compiled)

FLUSH_SECONDS: Final = 0.2
MAX_LINES: Final = 256


def request_line(now: float, request_id: str, service: str, version: str | None, method: str, path: str,
                 status: int, replica: str | None, retries: int, queue_ms: float, upstream_ms: float,
                 total_ms: float) -> str:
    """The request's JSON log line, formatted directly: `json.dumps` of a dict was ~8 % of a request.

    The path goes through json's escaper, so it cannot break out of its field. The request id does not need
    to: it is the router's own (hex) or a client's that matched `scoring.REQUEST_ID` (letters, digits, `._:-`).
    The few values that repeat (service, version, method, replica) are escaped once and remembered. Times are
    whole units and a looked-up fraction, one f-string in all: formatting four floats (`"%.2f" % x`) was a
    third of the compiled line, and a string per number another sixth.
    """
    millis, queue, upstream, total = _units(now, 1000), _units(queue_ms, 100), _units(upstream_ms, 100), \
        _units(total_ms, 100)
    return (f'{{"time":{millis // 1000}.{_MILLIS[millis % 1000]},"requestId":"{request_id}",'
            f'"service":{_quoted(service)},"version":{_quoted(version)},"method":{_quoted(method)},'
            f'"path":{_quote(path)},"status":{status},"replica":{_quoted(replica)},"retries":{retries},'
            f'"queueMs":{queue // 100}.{_HUNDREDTHS[queue % 100]},'
            f'"upstreamMs":{upstream // 100}.{_HUNDREDTHS[upstream % 100]},'
            f'"totalMs":{total // 100}.{_HUNDREDTHS[total % 100]}}}')


_HUNDREDTHS: Final = [str(i).zfill(2) for i in range(100)]
_MILLIS: Final = [str(i).zfill(3) for i in range(1000)]


def _units(value: float, scale: int) -> int:
    """`value` (a time or a duration, so >= 0) in 1/`scale` units, rounded; a clock step back (or NaN) reads
    0, and infinity or a value too large to scale reads _MOST_UNITS rather than raising."""
    if not value > 0:
        return 0
    units = value * scale + 0.5
    return int(units) if units < 1e18 else _MOST_UNITS  # a float comparison: native once compiled


_MOST_UNITS: Final = 10 ** 18  # far past any real time or duration (in ms: 30 million years)


_QUOTED: Final[dict[str | None, str]] = {None: "null"}
_QUOTED_MAX: Final = 4096  # replicas come and go: start afresh rather than grow without bound


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

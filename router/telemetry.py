"""Application Insights request telemetry: one request item per scoring request of a service that has
`appInsights: true`, sent to the workspace's Application Insights by Azure Monitor's OpenTelemetry exporter.

The request path only appends a tuple to a bounded list (`record`, O(1)); when the list is full
(ingestion down or too slow) the request is not recorded and `dropped` counts it. Every FLUSH_SECONDS the
event loop hands what is queued, marshalled in one write, to an exporter process of its own
(`router/telemetry_export.py`), which turns records into OpenTelemetry server spans and posts them in
batches. A process, not a thread: the exporter spends ~200 us of Python per item, and a thread doing that
would hold the GIL the event loop needs (up to the 5 ms switch interval at a time). If that process falls
behind, its pipe fills and whole batches are dropped and counted; the event loop never waits for it.
The connection string comes from APPLICATIONINSIGHTS_CONNECTION_STRING (a Kubernetes Secret in a pod),
which the exporter process inherits; it is never in the router's config.
"""
from __future__ import annotations

import asyncio
import json
import logging
import marshal
import os
import struct
import sys
import time
from pathlib import Path

log = logging.getLogger("router.telemetry")

CONNECTION_STRING_ENV = "APPLICATIONINSIGHTS_CONNECTION_STRING"
FLUSH_SECONDS = 0.2
MAX_BUFFERED = 20_000  # records between flushes: 100,000 requests a second before recording drops
MAX_PENDING_BYTES = 8 * 1024 * 1024  # written to the exporter process but not yet read by it
STOP_SECONDS = 10.0  # what a shutdown waits for the exporter process to send what it holds
FRAME = struct.Struct("<I")  # each write: its length, then marshal.dumps((wall-clock offset, records))
RESTART_SECONDS, MAX_RESTART_SECONDS = 1.0, 60.0  # pause before starting a new exporter process, doubling
EXPORTER_COMMAND = [sys.executable, "-m", "router.telemetry_export"]
PACKAGE_PARENT = Path(__file__).resolve().parents[1]  # where `-m router.telemetry_export` finds the package


class RequestTelemetry:
    """Queues request records on the event loop and hands them to the exporter process in batches."""

    def __init__(self, command: list[str] = EXPORTER_COMMAND, *, max_buffered: int = MAX_BUFFERED,
                 flush_seconds: float = FLUSH_SECONDS, max_pending_bytes: int = MAX_PENDING_BYTES,
                 restart_seconds: float = RESTART_SECONDS) -> None:
        self._command = command
        self._restart_seconds = restart_seconds
        self._stopping = False
        self._counted = (0, 0)  # exported and failed of exporter processes that have ended
        self._buffer: list[tuple] = []
        self._max_buffered = max_buffered
        self._flush_seconds = flush_seconds
        self._max_pending = max_pending_bytes
        self._process: asyncio.subprocess.Process | None = None
        self._tasks: list[asyncio.Task] = []
        self.dropped = 0  # not recorded: the buffer was full, the exporter behind, or gone
        self.exported = 0  # accepted by the ingestion endpoint (as the exporter process reports)
        self.failed = 0  # recorded, but the ingestion endpoint did not take them

    def record(self, service: str, version: str | None, method: bytes, path: str, status: int, request_id: bytes,
               client_request_id: bytes | None, started: float, seconds: float) -> None:
        """The request path's one call: `started` is time.monotonic() at arrival, `seconds` the time taken;
        `client_request_id` is the client's x-ms-request-id (v1's Client Request Id), if it sent one.
        Bytes stay bytes here; the exporter process decodes them."""
        buffer = self._buffer
        if len(buffer) >= self._max_buffered:
            self.dropped += 1
            return
        buffer.append((started, seconds, service, version, method, path, status, request_id, client_request_id))

    async def start(self) -> None:
        await self._spawn()
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._flush_every()), loop.create_task(self._supervise())]

    async def _spawn(self) -> None:
        # Its stderr is ours: the exporter's own errors land in the router's log.
        self._process = await asyncio.create_subprocess_exec(*self._command, stdin=asyncio.subprocess.PIPE,
                                                             stdout=asyncio.subprocess.PIPE, cwd=PACKAGE_PARENT)

    async def stop(self) -> None:
        """Hand over what is queued, let the exporter process send it (bounded by STOP_SECONDS), end it."""
        for task in self._tasks[:1]:
            task.cancel()
        self.flush()
        self._stopping = True
        process = self._process
        if process is None:
            return
        if process.returncode is None:
            process.stdin.close()  # end of input: the exporter sends what it holds and exits
            try:
                await asyncio.wait_for(process.wait(), STOP_SECONDS)
            except asyncio.TimeoutError:
                process.kill()
                await process.wait()
        # The supervisor reads the last counts, or is pausing before a restart that will not come: not waited for.
        _, pending = await asyncio.wait(self._tasks, timeout=1.0)
        for task in pending:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _flush_every(self) -> None:
        while True:
            await asyncio.sleep(self._flush_seconds)
            self.flush()

    def flush(self) -> None:
        batch, self._buffer = self._buffer, []
        if not batch:
            return
        process = self._process
        if process is None or process.returncode is not None or process.stdin.is_closing():
            self.dropped += len(batch)
            return
        if process.stdin.transport.get_write_buffer_size() > self._max_pending:
            self.dropped += len(batch)  # the exporter is behind: drop rather than grow
            return
        payload = marshal.dumps((time.time() - time.monotonic(), batch))
        process.stdin.write(FRAME.pack(len(payload)) + payload)

    async def _supervise(self) -> None:
        """Read the exporter's counts; when it ends before the router does (killed for memory, a bug, a bad
        connection string), start another after a growing pause: telemetry stays on for the pod's life.
        What is recorded in between is dropped and counted."""
        delay = self._restart_seconds
        while True:
            await self._read_counts()
            code = await self._process.wait()
            if self._stopping:
                return
            self._counted = (self.exported, self.failed)
            log.error("the Application Insights exporter process exited with %s; starting another in %g s", code, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_RESTART_SECONDS)
            if self._stopping:
                return
            await self._spawn()

    async def _read_counts(self) -> None:
        """The exporter process reports its running totals, one JSON line after each batch it posts."""
        exported, failed = self._counted
        async for line in self._process.stdout:
            try:
                counts = json.loads(line)
                self.exported, self.failed = exported + counts["exported"], failed + counts["failed"]
            except (ValueError, KeyError, TypeError):  # a stray line (a library's print) is not a reason to stop
                log.debug("not a count line from the exporter: %.200r", line)


class TelemetryCollector:
    """router_telemetry_items_total{outcome=exported|failed|dropped}, read at scrape time."""

    def __init__(self, telemetry: RequestTelemetry) -> None:
        self._telemetry = telemetry

    def collect(self):
        from prometheus_client.core import CounterMetricFamily

        items = CounterMetricFamily("router_telemetry_items", "Application Insights request items, by outcome",
                                    labels=["outcome"])
        for outcome in ("exported", "failed", "dropped"):
            items.add_metric([outcome], getattr(self._telemetry, outcome))
        yield items


def from_environment(services: list[str]) -> RequestTelemetry | None:
    """Telemetry for `services` (those with appInsights: true), or None when none has it on.

    A missing connection string is logged and telemetry stays off: scoring matters more than its record.
    """
    if not services:
        return None
    if not os.environ.get(CONNECTION_STRING_ENV):
        log.error("services %s have appInsights on, but %s is not set: no request telemetry is sent",
                  ", ".join(services), CONNECTION_STRING_ENV)
        return None
    return RequestTelemetry()

"""Application Insights request telemetry: one request item per scoring request of a service that has
`appInsights: true`, sent to the workspace's Application Insights by Azure Monitor's OpenTelemetry exporter.

The request path only appends a tuple to a bounded deque (`record`, O(1), no lock: deque appends and pops
are atomic). A daemon thread wakes every EXPORT_SECONDS, turns what is queued into OpenTelemetry server
spans and posts them in batches of at most MAX_BATCH; nothing on the event loop waits for the network.
When the deque is full (ingestion down or too slow), a request is not recorded and `dropped` counts it.
The connection string (ingestion endpoint and key) comes from APPLICATIONINSIGHTS_CONNECTION_STRING, which
the pod reads from a Kubernetes Secret; it is never in the router's config.
"""
from __future__ import annotations

import collections
import logging
import os
import threading
import time

from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, Status, StatusCode

log = logging.getLogger("router.telemetry")

CONNECTION_STRING_ENV = "APPLICATIONINSIGHTS_CONNECTION_STRING"
EXPORT_SECONDS = 1.0
MAX_BATCH = 512  # items per POST to the ingestion endpoint
MAX_BUFFERED = 20_000  # about 4 s of requests at 5,000/s before recording drops
STOP_SECONDS = 5.0  # what a shutdown waits for the last batch
CLOUD_ROLE = "aks-serving-router"  # ai.cloud.role: the router's items stand apart from the model servers'

# The exporter's own side channels are off unless the pod asks for them: statsbeat and the OneSettings
# control plane reach Microsoft's endpoints on threads of their own, SDK stats add items to the user's
# resource, and offline storage needs a writable disk (the router's root filesystem is read-only).
_EXPORTER_DEFAULTS = {"APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
                      "APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED": "true",
                      "APPLICATIONINSIGHTS_SDKSTATS_DISABLED": "true"}


class RequestTelemetry:
    """Queues request records on the event loop and exports them from a thread of its own."""

    def __init__(self, exporter: SpanExporter, provider: TracerProvider, *, export_seconds: float = EXPORT_SECONDS,
                 max_buffered: int = MAX_BUFFERED, max_batch: int = MAX_BATCH) -> None:
        """`exporter`: an OpenTelemetry SpanExporter (AzureMonitorTraceExporter in a pod); `provider`: the
        TracerProvider whose resource names the router (the exporter is given the same one)."""
        self._exporter = exporter
        self._tracer = provider.get_tracer("router")
        self._buffer: collections.deque = collections.deque()
        self._max_buffered = max_buffered
        self._max_batch = max_batch
        self._export_seconds = export_seconds
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.dropped = 0  # not recorded: the buffer was full
        self.exported = 0
        self.failed = 0  # recorded, but the ingestion endpoint did not take them

    def record(self, service: str, version: str | None, method: bytes, path: str, status: int, request_id: bytes,
               started: float, seconds: float) -> None:
        """The request path's one call: `started` is time.monotonic() at arrival, `seconds` the time taken.
        Bytes stay bytes here; the export thread decodes them."""
        buffer = self._buffer
        if len(buffer) >= self._max_buffered:
            self.dropped += 1
            return
        buffer.append((started, seconds, service, version, method, path, status, request_id))

    # ---- export thread -------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="app-insights-export", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Send what is queued (bounded by STOP_SECONDS) and end the thread."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(STOP_SECONDS)
        self._exporter.shutdown()

    def _run(self) -> None:
        while not self._stopping.wait(self._export_seconds):
            self.export_queued()
        self.export_queued()

    def export_queued(self) -> None:
        buffer = self._buffer
        while buffer:
            # Monotonic arrival times become wall-clock times with one offset per batch.
            offset = time.time() - time.monotonic()
            batch = [buffer.popleft() for _ in range(min(len(buffer), self._max_batch))]
            spans = [self._span(record, offset) for record in batch]
            try:
                ok = self._exporter.export(spans) == SpanExportResult.SUCCESS
            except Exception:  # noqa: BLE001 - telemetry must never take the router down
                log.exception("exporting request telemetry failed")
                ok = False
            if ok:
                self.exported += len(batch)
            else:
                self.failed += len(batch)

    def _span(self, record: tuple, offset: float):
        started, seconds, service, version, method, path, status, request_id = record
        method, request_id = method.decode("latin-1"), request_id.decode("latin-1")
        start_ns = int((started + offset) * 1e9)
        attributes = {"http.request.method": method, "http.route": path, "url.path": path,
                      "http.response.status_code": status, "service": service, "requestId": request_id}
        if version is not None:
            attributes["version"] = version
        span = self._tracer.start_span(f"{method} {path}", context=Context(), kind=SpanKind.SERVER,
                                       attributes=attributes, start_time=start_ns)
        if status >= 500:  # 4xx is the client's failure; App Insights marks those unsuccessful by code
            span.set_status(Status(StatusCode.ERROR))
        span.end(end_time=start_ns + int(seconds * 1e9))
        return span


def tracer_provider() -> TracerProvider:
    """The router's resource: ai.cloud.role and, in a pod, ai.cloud.roleInstance."""
    attributes = {"service.name": CLOUD_ROLE}
    if pod := os.environ.get("POD_NAME"):
        attributes["service.instance.id"] = pod
    return TracerProvider(resource=Resource.create(attributes))


def azure_monitor_exporter(connection_string: str, provider: TracerProvider) -> SpanExporter:
    for key, value in _EXPORTER_DEFAULTS.items():
        os.environ.setdefault(key, value)
    from azure.monitor.opentelemetry.exporter import AzureMonitorTraceExporter

    # The exporter reports the provider's resource; without one it looks for a global provider.
    return AzureMonitorTraceExporter(connection_string=connection_string, disable_offline_storage=True,
                                     tracer_provider=provider)


def from_environment(services: list[str]) -> RequestTelemetry | None:
    """Telemetry for `services` (those with appInsights: true), or None when none has it on.

    A missing connection string is logged and telemetry stays off: scoring matters more than its record.
    """
    if not services:
        return None
    connection_string = os.environ.get(CONNECTION_STRING_ENV)
    if not connection_string:
        log.error("services %s have appInsights on, but %s is not set: no request telemetry is sent",
                  ", ".join(services), CONNECTION_STRING_ENV)
        return None
    provider = tracer_provider()
    return RequestTelemetry(azure_monitor_exporter(connection_string, provider), provider)

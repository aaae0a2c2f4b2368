"""The router's Application Insights exporter process (started by router/telemetry.py; not a command for
people): reads batches of request records from stdin, posts them as request items through Azure Monitor's
OpenTelemetry exporter, and writes its running totals to stdout, one JSON line per post.

    APPLICATIONINSIGHTS_CONNECTION_STRING=... python -m router.telemetry_export < frames

On end of input it sends what it holds and exits. Offline storage is off (the router's root filesystem is
read-only, and a backlog is better dropped than replayed into a router that is catching up).
"""
from __future__ import annotations

import json
import logging
import marshal
import os
import sys

CONNECTION_STRING_ENV = "APPLICATIONINSIGHTS_CONNECTION_STRING"
MAX_BATCH = 512  # items per POST to the ingestion endpoint
CLOUD_ROLE = "aks-serving-router"  # ai.cloud.role: the router's items stand apart from the model servers'
# The exporter's own side channels are off unless the pod asks for them: statsbeat and the OneSettings
# control plane reach Microsoft's endpoints on threads of their own, SDK stats add items to the user's resource.
EXPORTER_DEFAULTS = {"APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
                     "APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED": "true",
                     "APPLICATIONINSIGHTS_SDKSTATS_DISABLED": "true"}

for _key, _value in EXPORTER_DEFAULTS.items():  # read when the exporter is imported and built
    os.environ.setdefault(_key, _value)

from opentelemetry.context import Context  # noqa: E402
from opentelemetry.sdk.resources import Resource  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult  # noqa: E402
from opentelemetry.trace import SpanKind, Status, StatusCode  # noqa: E402

log = logging.getLogger("router.telemetry")


def tracer_provider() -> TracerProvider:
    """The router's resource: ai.cloud.role and, in a pod, ai.cloud.roleInstance."""
    attributes = {"service.name": CLOUD_ROLE}
    if pod := os.environ.get("POD_NAME"):
        attributes["service.instance.id"] = pod
    return TracerProvider(resource=Resource.create(attributes))


def azure_monitor_exporter(connection_string: str, provider: TracerProvider) -> SpanExporter:
    from azure.monitor.opentelemetry.exporter import AzureMonitorTraceExporter

    # The exporter reports the provider's resource; without one it looks for a global provider.
    return AzureMonitorTraceExporter(connection_string=connection_string, disable_offline_storage=True,
                                     tracer_provider=provider)


class Exporter:
    """Records -> OpenTelemetry server spans -> `exporter`, at most MAX_BATCH a post; counts the outcome."""

    def __init__(self, exporter: SpanExporter, provider: TracerProvider, max_batch: int = MAX_BATCH) -> None:
        self._exporter = exporter
        self._tracer = provider.get_tracer("router")
        self._max_batch = max_batch
        self.exported = 0
        self.failed = 0

    def export(self, offset: float, records: list[tuple], report=None) -> None:
        """`offset` turns the records' monotonic times into wall-clock times; `report()` after each post."""
        for i in range(0, len(records), self._max_batch):
            batch = records[i:i + self._max_batch]
            spans = [self.span(record, offset) for record in batch]
            try:
                ok = self._exporter.export(spans) == SpanExportResult.SUCCESS
            except Exception:  # noqa: BLE001 - one failed post must not end the exporter
                log.exception("exporting request telemetry failed")
                ok = False
            if ok:
                self.exported += len(batch)
            else:
                self.failed += len(batch)
            if report is not None:
                report()

    def span(self, record: tuple, offset: float):
        started, seconds, service, version, method, path, status, request_id, client_request_id = record
        method, request_id = method.decode("latin-1"), request_id.decode("latin-1")
        start_ns = int((started + offset) * 1e9)
        attributes = {"http.request.method": method, "http.route": path, "url.path": path,
                      "http.response.status_code": status, "service": service, "requestId": request_id}
        if version is not None:
            attributes["version"] = version
        if client_request_id is not None:  # as the client sent it, up to the header size limit: cut to fit
            attributes["clientRequestId"] = client_request_id[:256].decode("latin-1")
        span = self._tracer.start_span(f"{method} {path}", context=Context(), kind=SpanKind.SERVER,
                                       attributes=attributes, start_time=start_ns)
        if status >= 500:  # 4xx is the client's failure; App Insights marks those unsuccessful by code
            span.set_status(Status(StatusCode.ERROR))
        span.end(end_time=start_ns + int(seconds * 1e9))
        return span

    def shutdown(self) -> None:
        self._exporter.shutdown()


def frames(stream):
    """(offset, records) per frame written by router/telemetry.py, until end of input."""
    from router.telemetry import FRAME

    while header := stream.read(FRAME.size):
        (size,) = FRAME.unpack(header)
        payload = stream.read(size)
        if len(payload) < size:
            return  # the router ended mid-write
        yield marshal.loads(payload)  # written by our own parent process, never by a client


def main() -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    provider = tracer_provider()
    exporter = Exporter(azure_monitor_exporter(os.environ[CONNECTION_STRING_ENV], provider), provider)

    def report() -> None:
        sys.stdout.write(json.dumps({"exported": exporter.exported, "failed": exporter.failed}) + "\n")
        sys.stdout.flush()

    try:
        for offset, records in frames(sys.stdin.buffer):
            exporter.export(offset, records, report)
    finally:
        exporter.shutdown()


if __name__ == "__main__":
    main()

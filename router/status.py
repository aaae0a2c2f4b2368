"""The admin port's `/status`: per service, replicas, load and the last scaling decision.

What `make status` shows; read from the objects the request path already keeps, so serving it costs
the request path nothing.
"""
from __future__ import annotations

from .service import Service


async def status_document(services: dict[str, Service]) -> dict:
    return {name: await _service_status(service) for name, service in services.items()}


async def _service_status(service: Service) -> dict:
    autoscaler, pool = service.autoscaler, service.pool
    last = autoscaler.last if autoscaler else None
    scaled = autoscaler.last_scale if autoscaler else None
    limits = service.config.autoscale
    return {
        "replicas": {"current": await service.backend.current_replicas(), "ready": pool.ready,
                     "desired": last.desired if last else None,
                     "min": limits.min_replicas if autoscaler else None,
                     "max": limits.max_replicas if autoscaler else None},
        "utilization": round(last.utilization, 1) if last else None,
        "inFlight": pool.in_flight,
        "queued": pool.queued,
        "lastScale": {"at": scaled[0], "from": scaled[1].current, "to": scaled[1].desired,
                      "reason": scaled[1].reason, "utilization": round(scaled[1].utilization, 1)} if scaled else None,
    }

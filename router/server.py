"""`serve`: run the scoring and admin apps until SIGTERM, then drain gracefully."""
from __future__ import annotations

import asyncio
import logging
import signal

from aiohttp import web

from .app import SCORING_SERVER_OPTIONS, Router
from .settings import RouterConfig

log = logging.getLogger("router")


async def serve(config: RouterConfig, host: str, port: int, admin_host: str, admin_port: int) -> None:
    cluster = None
    if config.router.cluster is not None:
        from .backends.kubernetes import Cluster
        cluster = Cluster(config.router.cluster, admin_port)
    router = Router(config, cluster)
    grace = config.router.shutdown_grace_seconds
    # aiohttp's own access log is off: the router writes one JSON line per scoring request itself.
    scoring = web.AppRunner(router.scoring_app(), access_log=None, shutdown_timeout=grace, **SCORING_SERVER_OPTIONS)
    admin = web.AppRunner(router.admin_app(), access_log=None, shutdown_timeout=1)
    await scoring.setup()
    await admin.setup()
    await web.TCPSite(scoring, host, port, backlog=1024).start()
    await web.TCPSite(admin, admin_host, admin_port).start()
    log.info("router listening on %s:%d (admin %s:%d), services: %s", host, port, admin_host, admin_port,
             ", ".join(router.services))

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()

    # Not ready first, so Kubernetes stops sending new requests; then stop listening and let in-flight
    # requests finish (up to the grace period); then stop backends and autoscalers.
    log.info("shutting down: finishing in-flight requests (up to %.0f s)", grace)
    router.ready = False
    await scoring.cleanup()
    await admin.cleanup()
    log.info("router stopped")

"""`serve`: run the scoring and admin ports until SIGTERM, then drain gracefully."""
from __future__ import annotations

import asyncio
import logging
import signal
import ssl as ssl_module

from aiohttp import web

from .acme import AcmeResponder
from .app import Router
from .http.server import HttpServer
from .scoring import Scoring
from .settings import RouterConfig
from .tls import ReloadingContext

log = logging.getLogger("router")


async def open_scoring(router: Router, host: str, port: int, ssl: ssl_module.SSLContext | None = None) -> HttpServer:
    """Listen for scoring requests (the router must be started). Tests use this too, so they exercise
    the same server as `serve`."""
    server = HttpServer(Scoring(router).handle, router.config.router.limits)
    await server.listen(host, port, backlog=1024, ssl=ssl)
    return server


async def serve(config: RouterConfig, host: str, port: int, admin_host: str, admin_port: int) -> None:
    cluster = None
    if config.router.cluster is not None:
        from .backends.kubernetes import Cluster
        cluster = Cluster(config.router.cluster, admin_port)
    router = Router(config, cluster)
    grace = config.router.shutdown_grace_seconds
    await router.start()
    # aiohttp's own access log is off: the router writes one JSON line per scoring request itself.
    admin = web.AppRunner(router.admin_app(), access_log=None, shutdown_timeout=1)
    await admin.setup()
    listeners = [await open_scoring(router, host, port)]
    tls = acme = None
    if config.router.tls is not None:  # HTTPS on its own port; the plain port stays for in-cluster callers
        # An ACME certificate only exists once the router has answered its challenge: start without it.
        tls = ReloadingContext(config.router.tls, wait_for_files=config.router.acme is not None)
        tls.start()
        listeners.append(await open_scoring(router, host, config.router.tls.port, ssl=tls.context))
        log.info("TLS on %s:%d", host, config.router.tls.port)
    if config.router.acme is not None:
        acme = AcmeResponder(config.router.acme, cluster.api, config.router.cluster.namespace)
        await acme.start()
        listeners.append(acme_listener := HttpServer(acme.handle, config.router.limits))
        await acme_listener.listen(host, config.router.acme.port)
        log.info("ACME challenges and HTTPS redirects on %s:%d", host, config.router.acme.port)
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
    await asyncio.gather(*(listener.shutdown(grace) for listener in listeners))
    if tls is not None:
        tls.stop()
    if acme is not None:
        await acme.stop()
    await router.stop()
    await admin.cleanup()
    log.info("router stopped")

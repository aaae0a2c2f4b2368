"""A stand-in Application Insights ingestion endpoint on 127.0.0.1 (Azure's cannot be reached here).

It takes what Azure Monitor's exporters POST to `<IngestionEndpoint>/v2.1/track` (a JSON array of
envelopes, gzipped or not), keeps every envelope and answers as the real endpoint does when it accepts all.
Exporters are pointed at it through the connection string's `IngestionEndpoint=`, which they honour over
plain http.
"""
from __future__ import annotations

import asyncio
import gzip
import json

from aiohttp import web

INSTRUMENTATION_KEY = "00000000-0000-4000-8000-000000000001"  # any UUID: the stand-in checks none


class IngestionStandIn:
    def __init__(self) -> None:
        self.envelopes: list[dict] = []
        self.posts = 0
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> "IngestionStandIn":
        app = web.Application(client_max_size=64 * 1024 * 1024)
        # The exporter joins the endpoint and the path with a slash, so an endpoint ending in '/' gives '//'.
        app.router.add_post("/v2.1/track", self._track)
        app.router.add_post("//v2.1/track", self._track)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def connection_string(self) -> str:
        return f"InstrumentationKey={INSTRUMENTATION_KEY};IngestionEndpoint=http://127.0.0.1:{self.port}/"

    async def _track(self, request: web.Request) -> web.Response:
        body = await request.read()
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        items = json.loads(body)
        items = items if isinstance(items, list) else [items]
        self.posts += 1
        self.envelopes.extend(items)
        return web.json_response({"itemsReceived": len(items), "itemsAccepted": len(items), "errors": []})

    def of_type(self, base_type: str) -> list[dict]:
        """The `baseData` of every envelope of `base_type` (RequestData, MessageData, ExceptionData, ...)."""
        return [e["data"]["baseData"] for e in self.envelopes if e.get("data", {}).get("baseType") == base_type]

    async def until(self, condition, seconds: float) -> bool:
        """Wait (bounded) for exporters that send on their own schedule."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while not condition() and loop.time() < deadline:
            await asyncio.sleep(0.05)
        return condition()

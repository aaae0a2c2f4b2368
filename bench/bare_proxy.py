"""Reference: the least an aiohttp reverse proxy can do (no auth, limits, queue, retries, logs, metrics).

python bench/bare_proxy.py PORT UPSTREAM_URL
"""
import sys

import aiohttp
from aiohttp import web

HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "date", "server"}


async def proxy(request: web.Request) -> web.StreamResponse:
    session: aiohttp.ClientSession = request.app["session"]
    body = request.content.iter_chunked(65536) if request.body_exists else None
    headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP}
    async with session.request(request.method, request.app["upstream"] + "/score", headers=headers,
                               data=body) as upstream:
        out = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP}
        return web.Response(status=upstream.status, body=await upstream.read(), headers=out)


async def session_ctx(app: web.Application):
    app["session"] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    yield
    await app["session"].close()


def main() -> None:
    port, upstream = int(sys.argv[1]), sys.argv[2].rstrip("/")
    app = web.Application()
    app["upstream"] = upstream
    app.cleanup_ctx.append(session_ctx)
    app.router.add_route("*", "/{tail:.*}", proxy)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


if __name__ == "__main__":
    main()

"""A small Kubernetes API client on aiohttp: the handful of calls the router makes, nothing more.

The router needs list+watch of EndpointSlices and Secrets, get+patch of a Deployment's scale, and a Lease.
A full client library would bring a large dependency for that; these are plain REST calls.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import ssl
import time
from pathlib import Path
from typing import AsyncIterator, Callable

import aiohttp

log = logging.getLogger("router.kubernetes")
TOKEN_REREAD_SECONDS = 60  # projected service-account tokens rotate; re-read the file now and then


class ApiError(Exception):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"Kubernetes API answered {status}: {body[:200]}")
        self.status = status


def resource_path(group: str, version: str, namespace: str, resource: str, name: str | None = None,
                  subresource: str | None = None) -> str:
    base = f"/api/{version}" if group == "" else f"/apis/{group}/{version}"
    path = f"{base}/namespaces/{namespace}/{resource}"
    if name:
        path += f"/{name}"
    if subresource:
        path += f"/{subresource}"
    return path


class KubeApi:
    def __init__(self, server: str | None, token_file: Path | None, ca_file: Path | None) -> None:
        if server is None:
            host, port = os.environ["KUBERNETES_SERVICE_HOST"], os.environ.get("KUBERNETES_SERVICE_PORT", "443")
            server = f"https://{host}:{port}"
        self.server = server.rstrip("/")
        self._token_file = token_file
        self._token: str | None = None
        self._token_read = -1e9
        self._ssl: ssl.SSLContext | bool = True
        if self.server.startswith("https") and ca_file is not None and Path(ca_file).exists():
            self._ssl = ssl.create_default_context(cafile=str(ca_file))
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=5))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def _headers(self, content_type: str | None = None) -> dict[str, str]:
        if self._token_file and time.monotonic() - self._token_read > TOKEN_REREAD_SECONDS:
            try:
                self._token = Path(self._token_file).read_text().strip()
            except OSError:
                self._token = None
            self._token_read = time.monotonic()
        headers = {"Accept": "application/json"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    async def request(self, method: str, path: str, params: dict | None = None, body: dict | None = None,
                      content_type: str = "application/json", timeout: float = 10) -> dict:
        async with self._session.request(
                method, self.server + path, params=params, ssl=self._ssl,
                headers=self._headers(content_type if body is not None else None),
                data=json.dumps(body) if body is not None else None,
                timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
            text = await resp.text()
            if resp.status >= 400:
                raise ApiError(resp.status, text)
            return json.loads(text)

    async def watch(self, path: str, params: dict) -> AsyncIterator[dict]:
        """Yield watch events (one JSON object per line) until the server ends the stream."""
        query = {**params, "watch": "1", "allowWatchBookmarks": "true"}
        async with self._session.get(self.server + path, params=query, ssl=self._ssl, headers=self._headers(),
                                     timeout=aiohttp.ClientTimeout(total=None, sock_read=330)) as resp:
            if resp.status >= 400:
                raise ApiError(resp.status, await resp.text())
            async for line in resp.content:
                if line.strip():
                    yield json.loads(line)


async def list_and_watch(api: KubeApi, path: str, label_selector: str,
                         on_change: Callable[[list[dict]], None], first_sync: asyncio.Event | None = None) -> None:
    """Keep `on_change` fed with the full current set of matching objects (list, then watch; relist on gaps)."""
    backoff = 0.5
    while True:
        try:
            listing = await api.request("GET", path, params={"labelSelector": label_selector})
            items = {_key(o): o for o in listing.get("items", [])}
            on_change(list(items.values()))
            if first_sync is not None:
                first_sync.set()
            version = listing.get("metadata", {}).get("resourceVersion", "")
            backoff = 0.5
            async for event in api.watch(path, {"labelSelector": label_selector, "resourceVersion": version,
                                                "timeoutSeconds": "300"}):
                kind, obj = event.get("type"), event.get("object", {})
                if kind == "ERROR":  # e.g. 410 Gone: our resourceVersion is too old; relist
                    break
                if kind == "BOOKMARK":
                    continue
                if kind == "DELETED":
                    items.pop(_key(obj), None)
                else:
                    items[_key(obj)] = obj
                on_change(list(items.values()))
        except asyncio.CancelledError:
            raise
        except (aiohttp.ClientError, asyncio.TimeoutError, ApiError, ValueError) as e:
            log.warning("watch %s?labelSelector=%s failed (%s); retrying in %.1f s", path, label_selector, e, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 10)


def _key(obj: dict) -> str:
    meta = obj.get("metadata", {})
    return meta.get("uid") or meta.get("name", "")

"""A stand-in for the Kubernetes API server (none can run on these machines), on 127.0.0.1.

It keeps objects in memory and implements just enough of the API's REST semantics for the router: list
with label selectors, watch streams, get, create, update (with resourceVersion conflicts) and merge-patch.
It records every (verb, group, resource, subresource, namespace) it is asked for, so the stack's Role can
be checked to allow exactly those. For `python -m aks_serving` it also serves pod logs (`pods/log`, with
tailLines and follow) and port-forwards (`pods/portforward` over a WebSocket, `v4.channel.k8s.io`, as the
kubelet speaks it: each channel's first frame names its port, then channel 0 carries the stream) to
addresses on 127.0.0.1 that a test assigns to a pod's port.
"""
from __future__ import annotations

import asyncio
import copy
import json
import re

from aiohttp import web
from aiohttp.test_utils import TestServer

TOKEN = "stand-in-service-account-token"  # the service-account token the tests' router pods present
PATH = re.compile(r"^/(?:api/(?P<core>v1)|apis/(?P<group>[^/]+)/(?P<version>[^/]+))"
                  r"/namespaces/(?P<ns>[^/]+)/(?P<resource>[^/]+)(?:/(?P<name>[^/]+))?(?:/(?P<sub>[^/]+))?$")


class StandInApiServer:
    def __init__(self, token: str) -> None:
        self.token = token
        self.calls: list[tuple[str, str, str, str, str]] = []  # (verb, group, resource, subresource, namespace)
        self.objects: dict[tuple[str, str, str], dict] = {}  # (resource, namespace, name) -> object
        self.scales: dict[tuple[str, str], int | None] = {}  # (namespace, deployment) -> spec.replicas
        self.scale_patches: list[tuple[str, int]] = []
        self.patched_by: list[tuple[str, str, str | None]] = []  # merge patches: (resource, name, fieldManager)
        self.pod_logs: dict[tuple[str, str], list[str]] = {}  # (namespace, pod) -> lines of its container
        self.forwards: dict[tuple[str, str, int], int] = {}  # (namespace, pod, port) -> a port on 127.0.0.1
        self._log_written = asyncio.Event()
        self._version = 100
        self._watchers: list[tuple[str, str, str, asyncio.Queue]] = []
        self._closing = False
        self.server: TestServer | None = None

    async def start(self) -> str:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.server = TestServer(app, host="127.0.0.1")
        await self.server.start_server()
        return str(self.server.make_url("")).rstrip("/")

    async def close(self) -> None:
        self._closing = True
        self._log_written.set()  # followers of a pod log stop
        for *_, queue in self._watchers:
            queue.put_nowait(None)
        await self.server.close()

    # ---- what tests use to change the cluster -----------------------------------------------------

    def put(self, resource: str, namespace: str, obj: dict) -> None:
        """Create or replace an object and tell the watchers."""
        self._version += 1
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        meta.update({"namespace": namespace, "resourceVersion": str(self._version)})
        meta.setdefault("uid", f"uid-{resource}-{namespace}-{meta['name']}")
        key = (resource, namespace, meta["name"])
        kind = "MODIFIED" if key in self.objects else "ADDED"
        self.objects[key] = obj
        self._notify(kind, resource, namespace, obj)

    def log(self, namespace: str, pod: str, *lines: str) -> None:
        """The pod's container writes lines (followers of its log get them)."""
        self.pod_logs.setdefault((namespace, pod), []).extend(lines)
        self._log_written.set()
        self._log_written = asyncio.Event()

    def delete(self, resource: str, namespace: str, name: str) -> None:
        obj = self.objects.pop((resource, namespace, name))
        self._notify("DELETED", resource, namespace, obj)

    def _notify(self, kind: str, resource: str, namespace: str, obj: dict) -> None:
        for w_resource, w_namespace, selector, queue in self._watchers:
            if w_resource == resource and w_namespace == namespace and _matches(obj, selector):
                queue.put_nowait({"type": kind, "object": obj})

    # ---- HTTP --------------------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"kind": "Status", "code": 401}, status=401)
        m = PATH.match(request.path)
        if not m:
            return web.json_response({"kind": "Status", "code": 404}, status=404)
        group = "" if m["core"] else m["group"]
        ns, resource, name, sub = m["ns"], m["resource"], m["name"], m["sub"] or ""
        verb = {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}[request.method]
        if request.method == "GET" and name is None:
            verb = "watch" if request.query.get("watch") in ("1", "true") else "list"
        if sub == "portforward":
            verb = "create"  # RBAC asks for create on pods/portforward, whichever method opens the stream
        self.calls.append((verb, group, resource, sub, ns))
        if sub == "log":
            return await self._pod_log(request, ns, name)
        if sub == "portforward":
            return await self._port_forward(request, ns, name)
        selector = request.query.get("labelSelector", "")
        if verb == "list":
            items = [o for (r, n, _), o in self.objects.items() if r == resource and n == ns and _matches(o, selector)]
            return web.json_response({"items": items, "metadata": {"resourceVersion": str(self._version)}})
        if verb == "watch":
            return await self._watch(request, resource, ns, selector)
        if sub == "scale":
            return await self._scale(request, verb, ns, name)
        key = (resource, ns, name or "")
        if verb == "get":
            if key not in self.objects:
                return web.json_response({"kind": "Status", "code": 404}, status=404)
            return web.json_response(self.objects[key])
        body = await request.json()
        if verb == "create":
            key = (resource, ns, body["metadata"]["name"])
            if key in self.objects:
                return web.json_response({"kind": "Status", "code": 409}, status=409)
            self.put(resource, ns, body)
            return web.json_response(self.objects[key], status=201)
        if verb == "update":
            current = self.objects.get(key)
            if current is None or body["metadata"].get("resourceVersion") != current["metadata"]["resourceVersion"]:
                return web.json_response({"kind": "Status", "code": 409}, status=409)
            self.put(resource, ns, body)
            return web.json_response(self.objects[key])
        if verb == "patch" and request.content_type == "application/merge-patch+json" and key in self.objects:
            self.patched_by.append((resource, name, request.query.get("fieldManager")))
            self.put(resource, ns, _merge_patch(self.objects[key], body))
            return web.json_response(self.objects[key])
        return web.json_response({"kind": "Status", "code": 405}, status=405)

    async def _pod_log(self, request: web.Request, ns: str, pod: str) -> web.StreamResponse:
        if (ns, pod) not in self.pod_logs:
            return web.json_response({"kind": "Status", "code": 404}, status=404)
        lines = self.pod_logs[(ns, pod)]
        tail = int(request.query["tailLines"]) if "tailLines" in request.query else len(lines)
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        sent = max(0, len(lines) - tail)
        while True:
            for line in lines[sent:]:
                await response.write(line.encode() + b"\n")
            sent = len(lines)
            if request.query.get("follow") not in ("1", "true") or self._closing:
                return response
            await self._log_written.wait()

    async def _port_forward(self, request: web.Request, ns: str, pod: str) -> web.StreamResponse:
        port = int(request.query["ports"])
        if (ns, pod, port) not in self.forwards:
            return web.json_response({"kind": "Status", "code": 404}, status=404)
        socket = web.WebSocketResponse(protocols=("v4.channel.k8s.io",))
        await socket.prepare(request)
        reader, writer = await asyncio.open_connection("127.0.0.1", self.forwards[(ns, pod, port)])
        for channel in (0, 1):  # data, then error: each first says which port it is for
            await socket.send_bytes(bytes([channel]) + port.to_bytes(2, "little"))

        async def to_pod() -> None:
            async for message in socket:
                if message.type == web.WSMsgType.BINARY and message.data[:1] == b"\x00":
                    writer.write(message.data[1:])
                    await writer.drain()

        sending = asyncio.ensure_future(to_pod())
        try:
            while chunk := await reader.read(65536):
                await socket.send_bytes(b"\x00" + chunk)
        finally:
            sending.cancel()
            writer.close()
            await socket.close()
        return socket

    async def _scale(self, request: web.Request, verb: str, ns: str, name: str) -> web.Response:
        if (ns, name) not in self.scales:
            return web.json_response({"kind": "Status", "code": 404}, status=404)
        if verb == "patch":
            assert request.content_type == "application/merge-patch+json"
            replicas = (await request.json())["spec"]["replicas"]
            self.scales[(ns, name)] = replicas
            self.scale_patches.append((name, replicas))
        spec = {} if self.scales[(ns, name)] is None else {"replicas": self.scales[(ns, name)]}
        return web.json_response({"kind": "Scale", "metadata": {"name": name, "namespace": ns}, "spec": spec})

    async def _watch(self, request: web.Request, resource: str, ns: str, selector: str) -> web.StreamResponse:
        queue: asyncio.Queue = asyncio.Queue()
        entry = (resource, ns, selector, queue)
        self._watchers.append(entry)
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        try:
            while (event := await queue.get()) is not None:
                await response.write(json.dumps(event).encode() + b"\n")
        finally:
            self._watchers.remove(entry)
        return response


def _merge_patch(target: dict, patch: dict) -> dict:
    """RFC 7396: objects merge key by key, null removes a key, anything else replaces."""
    merged = copy.deepcopy(target)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge_patch(merged[key], value)
        else:
            merged[key] = value
    return merged


def _matches(obj: dict, selector: str) -> bool:
    labels = obj.get("metadata", {}).get("labels", {})
    for term in filter(None, selector.split(",")):
        key, value = term.split("=", 1)
        if labels.get(key) != value:
            return False
    return True


def endpoint_slice(name: str, service: str, port: int, endpoints: list[dict]) -> dict:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
            "metadata": {"name": name, "labels": {"kubernetes.io/service-name": service}},
            "ports": [{"name": "http", "port": port, "protocol": "TCP"}], "endpoints": endpoints}


def endpoint(address: str, ready=True, serving=None, terminating=False) -> dict:
    serving = ready if serving is None else serving
    return {"addresses": [address], "conditions": {"ready": ready, "serving": serving, "terminating": terminating}}


# Every API call router pods made in test_router_kubernetes (namespaces: "models" is a models namespace,
# "router-ns" the router's own). That test asserts the routers asked for exactly these; the stack's
# tests assert the router's Roles grant exactly these (tests/test_serving.py).
ROUTER_API_CALLS = {
    ("list", "discovery.k8s.io", "endpointslices", "", "models"),
    ("watch", "discovery.k8s.io", "endpointslices", "", "models"),
    ("list", "discovery.k8s.io", "endpointslices", "", "router-ns"),
    ("watch", "discovery.k8s.io", "endpointslices", "", "router-ns"),
    ("get", "apps", "deployments", "scale", "models"),
    ("patch", "apps", "deployments", "scale", "models"),
    ("get", "coordination.k8s.io", "leases", "", "router-ns"),
    ("create", "coordination.k8s.io", "leases", "", "router-ns"),
    ("update", "coordination.k8s.io", "leases", "", "router-ns"),
    ("list", "", "secrets", "", "router-ns"),
    ("watch", "", "secrets", "", "router-ns"),
}

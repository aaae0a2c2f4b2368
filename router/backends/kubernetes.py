"""Kubernetes: replicas from EndpointSlices, scaling through `deployments/scale`, router pods as peers.

API calls the router makes (the stack's Role must allow exactly these):
  discovery.k8s.io endpointslices  list, watch   model namespaces and the router's namespace (peers, and
                                                 cert-manager's ACME solvers: acme.py)
  apps deployments/scale           get, patch    model namespaces
  coordination.k8s.io leases       get, create, update   router's namespace (leader election)
  "" secrets                       list, watch   router's namespace (service keys, by label)
"""
from __future__ import annotations

import asyncio
import base64
import datetime as dt
import logging
import os
import socket
import time

import aiohttp

from ..pool import ReplicaPool
from ..settings import Autoscale, ClusterOptions, KubernetesBackend
from .kubeapi import ApiError, KubeApi, list_and_watch, resource_path

log = logging.getLogger("router.kubernetes")
PEER_LOAD_CACHE_SECONDS = 0.5  # one fetch per peer serves every service's autoscaler tick
PEER_TIMEOUT = aiohttp.ClientTimeout(total=0.5)
KEY_FIELDS = ("primaryKey", "secondaryKey")  # data keys of a service's key Secret


def slice_selector(service: str) -> str:
    return f"kubernetes.io/service-name={service}"


def serving_addresses(slices: list[dict], default_port: int) -> list[tuple[str, int]]:
    """(address, port) of every endpoint that takes new requests: serving and not terminating."""
    found = []
    for s in slices:
        ports = [p["port"] for p in (s.get("ports") or []) if p.get("port")]
        port = ports[0] if ports else default_port
        for endpoint in s.get("endpoints") or []:
            cond = endpoint.get("conditions") or {}
            serving = cond.get("serving", cond.get("ready", True))  # serving is unset on old API servers
            if serving and not cond.get("terminating", False):
                found.extend((address, port) for address in endpoint.get("addresses") or [])
    return sorted(set(found))


class KubernetesReplicas:
    """One model Deployment: its ready pods feed the pool; its scale subresource is the replica count."""

    can_scale = True

    def __init__(self, service: str, config: KubernetesBackend, cluster: "Cluster", autoscale: Autoscale) -> None:
        self.service = service
        self.config = config
        self.cluster = cluster
        self.autoscale = autoscale
        self._task: asyncio.Task | None = None
        self._scale_path = resource_path("apps", "v1", config.namespace, "deployments", config.deployment, "scale")

    async def start(self, pool: ReplicaPool) -> None:
        c = self.config
        synced = asyncio.Event()

        def on_change(slices: list[dict]) -> None:
            pool.set_replicas([f"{c.scheme}://{url_host(a)}:{p}" for a, p in serving_addresses(slices, c.port)])

        path = resource_path("discovery.k8s.io", "v1", c.namespace, "endpointslices")
        self._task = asyncio.get_running_loop().create_task(
            list_and_watch(self.cluster.api, path, slice_selector(c.service), on_change, synced))
        try:  # a slow API server must not stop the router from starting; the watch keeps trying
            await asyncio.wait_for(synced.wait(), 10)
        except asyncio.TimeoutError:
            log.warning("service %s: no EndpointSlice listing yet", self.service)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def current_replicas(self) -> int:
        # The Deployment carries no replica count of its own (the router owns it), so unset reads as 0
        # and the autoscaler brings it up to minReplicas.
        scale = await self.cluster.api.request("GET", self._scale_path)
        return int(scale.get("spec", {}).get("replicas") or 0)

    async def scale(self, replicas: int) -> None:
        await self.cluster.api.request("PATCH", self._scale_path, body={"spec": {"replicas": replicas}},
                                       content_type="application/merge-patch+json")


class LeaseElector:
    """Leader election on a coordination.k8s.io Lease (optimistic concurrency on resourceVersion)."""

    def __init__(self, api: KubeApi, namespace: str, name: str, identity: str, lease_seconds: float) -> None:
        self.api = api
        self.identity = identity
        self.lease_seconds = lease_seconds
        self.path = resource_path("coordination.k8s.io", "v1", namespace, "leases", name)
        self.collection = resource_path("coordination.k8s.io", "v1", namespace, "leases")
        self.name = name
        self._leader_until = 0.0

    @property
    def is_leader(self) -> bool:
        return time.monotonic() < self._leader_until

    async def run(self) -> None:
        while True:
            try:
                await self.try_acquire_or_renew()
            except asyncio.CancelledError:
                raise
            except (aiohttp.ClientError, asyncio.TimeoutError, ApiError) as e:
                log.warning("lease %s: %s", self.name, e)
            await asyncio.sleep(self.lease_seconds / 3)

    async def try_acquire_or_renew(self) -> bool:
        started = time.monotonic()
        now = _now()
        try:
            lease = await self.api.request("GET", self.path)
        except ApiError as e:
            if e.status != 404:
                raise
            body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": self.name},
                    "spec": self._spec(now, now, 0)}
            return await self._write("POST", self.collection, body, started)
        spec = lease.get("spec", {})
        holder = spec.get("holderIdentity")
        renewed = _parse(spec.get("renewTime"))
        expired = renewed is None or (now - renewed).total_seconds() > spec.get("leaseDurationSeconds", 15)
        if holder != self.identity and not expired:
            self._leader_until = 0.0
            return False
        transitions = spec.get("leaseTransitions", 0) + (0 if holder == self.identity else 1)
        acquired = spec.get("acquireTime") if holder == self.identity else None
        lease["spec"] = self._spec(_parse(acquired) or now, now, transitions)
        return await self._write("PUT", self.path, lease, started)

    async def _write(self, method: str, path: str, body: dict, started: float) -> bool:
        try:
            await self.api.request(method, path, body=body)
        except ApiError as e:
            if e.status in (409, 422):  # another pod got there first
                self._leader_until = 0.0
                return False
            raise
        # Count the lease from before the request: a slow answer must not stretch our leadership.
        self._leader_until = started + self.lease_seconds
        return True

    def _spec(self, acquired: dt.datetime, renewed: dt.datetime, transitions: int) -> dict:
        return {"holderIdentity": self.identity, "leaseDurationSeconds": int(self.lease_seconds),
                "acquireTime": _format(acquired), "renewTime": _format(renewed), "leaseTransitions": transitions}


class Cluster:
    """What all services share in Kubernetes: the API client, leadership, peers, and key Secrets."""

    def __init__(self, options: ClusterOptions, admin_port: int, identity: str | None = None,
                 pod_ip: str | None = None) -> None:
        self.options = options
        self.api = KubeApi(options.api_server, options.token_file, options.ca_file)
        self.identity = identity or os.environ.get("POD_NAME") or socket.gethostname()
        self.me = (pod_ip or os.environ.get("POD_IP") or "127.0.0.1", admin_port)
        self.elector = LeaseElector(self.api, options.namespace, options.lease_name, self.identity,
                                    options.lease_seconds)
        self.peers: list[tuple[str, int]] = []
        self.pools: list[ReplicaPool] = []
        self._tasks: list[asyncio.Task] = []
        self._peer_loads: dict[str, float] = {}
        self._peer_loads_at = -1e9
        self._session: aiohttp.ClientSession | None = None

    @property
    def is_leader(self) -> bool:
        return self.elector.is_leader

    async def start(self, router) -> None:
        # Every pool splits its replicas' slots with the other router pods, whatever its backend.
        self.pools = [service.pool for service in router.services.values()]
        await self.api.start()
        self._session = aiohttp.ClientSession(timeout=PEER_TIMEOUT)
        loop = asyncio.get_running_loop()
        o = self.options
        slices = resource_path("discovery.k8s.io", "v1", o.namespace, "endpointslices")
        self._tasks.append(loop.create_task(list_and_watch(self.api, slices, slice_selector(o.peer_service),
                                                           self._on_peers)))
        self._tasks.append(loop.create_task(self.elector.run()))
        # (auth settings, authenticator) of every service and endpoint; their names may coincide.
        auths = [(c.auth, router.services[n].auth) for n, c in router.config.services.items()]
        auths += [(c.auth, router.endpoints[n].auth) for n, c in router.config.endpoints.items()]
        for settings, authenticator in auths:
            if settings.mode == "key" and settings.key_secret_labels:
                self._watch_keys(authenticator, settings.key_secret_labels)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
        await self.api.close()

    def _watch_keys(self, auth, labels: dict[str, str]) -> None:
        def on_change(secrets: list[dict]) -> None:
            keys = []
            for secret in secrets:
                data = secret.get("data") or {}
                keys.extend(base64.b64decode(data[f]).strip() for f in KEY_FIELDS if data.get(f))
            auth.set_keys(keys)

        path = resource_path("", "v1", self.options.namespace, "secrets")
        selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        self._tasks.append(asyncio.get_running_loop().create_task(list_and_watch(self.api, path, selector, on_change)))

    def _on_peers(self, slices: list[dict]) -> None:
        peers = serving_addresses(slices, self.me[1])
        self.peers = peers
        if self.me in peers:
            index, count = peers.index(self.me), len(peers)
        else:  # not listed yet (not ready): count ourselves in, last
            index, count = len(peers), len(peers) + 1
        for pool in self.pools:
            pool.set_pod_share(index, count)

    async def peer_load(self, service: str) -> float:
        """The summed load of every other router pod for `service` (what the leader adds to its own)."""
        if time.monotonic() - self._peer_loads_at > PEER_LOAD_CACHE_SECONDS:
            self._peer_loads_at = time.monotonic()
            others = [p for p in self.peers if p != self.me]
            answers = await asyncio.gather(*(self._fetch_load(p) for p in others))
            totals: dict[str, float] = {}
            for answer in answers:
                for name, load in answer.items():
                    totals[name] = totals.get(name, 0.0) + float(load)
            self._peer_loads = totals
        return self._peer_loads.get(service, 0.0)

    async def _fetch_load(self, peer: tuple[str, int]) -> dict:
        try:
            async with self._session.get(f"http://{url_host(peer[0])}:{peer[1]}/peer/load") as resp:
                return await resp.json() if resp.status == 200 else {}
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
            return {}  # a peer that does not answer counts as idle until it does


def url_host(address: str) -> str:
    """An EndpointSlice address as it goes in a URL (IPv6 in brackets)."""
    return f"[{address}]" if ":" in address else address


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _format(when: dt.datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # MicroTime, as Lease fields require


def _parse(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))

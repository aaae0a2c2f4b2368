"""The kubernetes backend, leader election and peers, against a stand-in API server on 127.0.0.1.

No Kubernetes API server can run on these machines, so kube_standin.StandInApiServer stands in for it.
The model replicas and both router pods are real (aiohttp on 127.0.0.1).
"""
import asyncio
import base64

import pytest
from aiohttp.test_utils import TestServer

from kube_standin import ROUTER_API_CALLS, TOKEN, endpoint, endpoint_slice
from router.backends.kubernetes import Cluster
from router.settings import RouterConfig
from router_testkit import free_port, until

pytestmark = pytest.mark.asyncio
LABELS = {"aks-serving/keys-for": "model-svc"}






def secret(key: str) -> dict:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "model-svc-keys", "labels": LABELS},
            "data": {"primaryKey": base64.b64encode(key.encode()).decode(),
                     "secondaryKey": base64.b64encode(b"secondary-" + key.encode()).decode()}}




async def test_routers_discover_replicas_elect_a_leader_share_slots_and_scale(standin, models, router_client, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    m1, m2 = await models(2)
    standin.put("endpointslices", "models", endpoint_slice("model-svc-a", "model-svc", m1.server.port,
                                                           [endpoint("127.0.0.1")]))
    standin.put("endpointslices", "models", endpoint_slice("model-svc-b", "model-svc", m2.server.port,
                                                           [endpoint("127.0.0.1")]))
    standin.put("endpointslices", "models", endpoint_slice("other-svc", "other-svc", 1, [endpoint("127.0.0.1")]))
    standin.scales[("models", "model-svc")] = None  # the Deployment carries no replica count
    standin.put("secrets", "router-ns", secret("key-one"))

    admin_ports = [free_port(), free_port()]
    for i, port in enumerate(admin_ports):  # the router pods behind the headless Service
        standin.put("endpointslices", "router-ns", endpoint_slice(f"router-peers-{i}", "router-peers", port,
                                                                  [endpoint("127.0.0.1")]))
    config = {
        "services": {"model-svc": {
            "auth": {"mode": "key", "keySecretLabels": LABELS},
            "backend": {"kind": "kubernetes", "namespace": "models", "service": "model-svc", "deployment": "model-svc"},
            "requests": {"maxConcurrentPerReplica": 2, "maxQueueWaitMs": 5000},
            "autoscale": {"minReplicas": 2, "maxReplicas": 6, "refreshSeconds": 0.1, "stableWindowSeconds": 3600}}},
        "router": {"cluster": {"namespace": "router-ns", "apiServer": str(standin.server.make_url("")).rstrip("/"),
                               "tokenFile": str(token_file), "caFile": None, "leaseSeconds": 3,
                               "peerService": "router-peers"}}}
    pods = []
    admins = []
    try:
        for i, port in enumerate(admin_ports):
            options = RouterConfig.model_validate(config).router.cluster
            cluster = Cluster(options, port, identity=f"router-{i}", pod_ip="127.0.0.1")
            client, router = await router_client(dict(config), cluster)
            admin = TestServer(router.admin_app(), host="127.0.0.1", port=port)
            await admin.start_server()
            admins.append(admin)
            pods.append((client, router))

        # Replicas come from the EndpointSlices of the model's Service only.
        for _, router in pods:
            assert sorted(router.services["model-svc"].pool.replicas) == sorted([m1.url, m2.url])

        # Exactly one leader.
        assert await until(lambda: sum(r.cluster.is_leader for _, r in pods) == 1)
        leader = next(r for _, r in pods if r.cluster.is_leader)
        follower_client, follower = next((c, r) for c, r in pods if not r.cluster.is_leader)

        # Each pod owns its share of every replica's 2 slots: 1 each, so the cap holds across pods.
        for url in (m1.url, m2.url):
            assert [r.services["model-svc"].pool.replicas[url].capacity for _, r in pods] == [1, 1]

        # The leader enforces minReplicas, since the Deployment has no count of its own.
        assert await until(lambda: standin.scales[("models", "model-svc")] == 2)

        # Keys come from the labelled Secret, and a rotated key works without a restart.
        url = "/api/v1/service/model-svc/score"
        assert (await follower_client.post(url, data=b"x", headers={"Authorization": "Bearer key-one"})).status == 200
        assert (await follower_client.post(url, data=b"x", headers={"Authorization": "Bearer nope"})).status == 401
        standin.put("secrets", "router-ns", secret("key-two"))
        good = {"Authorization": "Bearer key-two"}

        async def key_two_works():
            return (await follower_client.post(url, data=b"x", headers=good)).status == 200
        for _ in range(100):
            if await key_two_works():
                break
            await asyncio.sleep(0.05)
        assert await key_two_works()
        assert (await follower_client.post(url, data=b"x", headers={"Authorization": "Bearer key-one"})).status == 401

        # Load on the follower alone: the leader sees it through the peers and scales up.
        # 4 slow requests on 2 replicas x 2 slots, of which this pod owns 2: 2 in flight + 2 queued.
        slow = [asyncio.ensure_future(follower_client.post(url + "?sleep=2.5", data=b"x", headers=good))
                for _ in range(4)]
        assert await until(lambda: ("model-svc", 3) in standin.scale_patches, 5)  # ceil(4 / (2 x 0.7)) = 3
        assert [r.status for r in await asyncio.gather(*slow)] == [200] * 4
        assert m1.peak <= 1 and m2.peak <= 1  # this pod never used more than its own slot on a replica

        # A terminating endpoint takes no new requests.
        standin.put("endpointslices", "models", endpoint_slice("model-svc-b", "model-svc", m2.server.port,
                                                               [endpoint("127.0.0.1", ready=False, serving=True,
                                                                         terminating=True)]))
        assert await until(lambda: all(r.services["model-svc"].pool.ready == 1 for _, r in pods))
        before = len(m2.requests)
        for _ in range(5):
            assert (await follower_client.post(url, data=b"x", headers=good)).status == 200
        assert len(m2.requests) == before
        # The slot share follows membership: the one remaining replica's 2 slots, 1 per pod.
        assert [r.services["model-svc"].pool.replicas[m1.url].capacity for _, r in pods] == [1, 1]
        assert leader.cluster.is_leader
    finally:
        for admin in admins:
            await admin.close()

    # Every API call the routers made, for the stack's Role: exactly these and nothing more.
    assert set(standin.calls) == ROUTER_API_CALLS


async def test_leadership_moves_when_the_leader_stops_renewing(standin, tmp_path):
    from router.backends.kubeapi import KubeApi
    from router.backends.kubernetes import LeaseElector
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    api = KubeApi(str(standin.server.make_url("")).rstrip("/"), token_file, None)
    await api.start()
    try:
        a = LeaseElector(api, "router-ns", "router-leader", "pod-a", lease_seconds=1)
        b = LeaseElector(api, "router-ns", "router-leader", "pod-b", lease_seconds=1)
        assert await a.try_acquire_or_renew() and a.is_leader
        assert not await b.try_acquire_or_renew() and not b.is_leader
        assert await a.try_acquire_or_renew()  # renewal keeps it
        await asyncio.sleep(1.2)  # pod-a stops renewing; its lease runs out
        assert not a.is_leader
        assert await b.try_acquire_or_renew() and b.is_leader
        lease = standin.objects[("leases", "router-ns", "router-leader")]
        assert lease["spec"]["holderIdentity"] == "pod-b" and lease["spec"]["leaseTransitions"] == 1
    finally:
        await api.close()

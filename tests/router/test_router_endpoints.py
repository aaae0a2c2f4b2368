"""Endpoints: versions picked by traffic share over the wire, and pinned by header."""
import asyncio
import math

import pytest

from router_testkit import service_config

pytestmark = pytest.mark.asyncio
N = 1000


async def test_traffic_split_matches_the_shares_within_binomial_bounds(models, router_client):
    a, b, c = await models(3)
    config = {"services": {"svc-a": service_config([a.url]), "svc-b": service_config([b.url]),
                           "svc-c": service_config([c.url])},
              "endpoints": {"ep1": {"auth": {"mode": "none"}, "versions": {
                  "version-a": {"service": "svc-a", "trafficPercentile": 50},
                  "version-b": {"service": "svc-b", "trafficPercentile": 30, "role": "control"},
                  "version-c": {"service": "svc-c", "trafficPercentile": 0}},
                  "defaultVersion": "version-b"}}}  # version-b gets 30 + the unassigned 20 = 50 %
    client, _ = await router_client(config)
    seen = {"version-a": 0, "version-b": 0, "version-c": 0}
    for _ in range(N // 50):
        batch = await asyncio.gather(*(client.post("/api/v1/endpoint/ep1/score", data=b"x") for _ in range(50)))
        for resp in batch:
            assert resp.status == 200
            seen[resp.headers["azureml-model-deployment"]] += 1
    assert seen["version-a"] == len(a.requests) and seen["version-b"] == len(b.requests)
    assert seen["version-c"] == 0 and c.requests == []
    for version, share in (("version-a", 0.5), ("version-b", 0.5)):
        sigma = math.sqrt(N * share * (1 - share))
        assert abs(seen[version] - N * share) <= 5 * sigma, seen  # fails by chance with p < 1e-6


async def test_header_pins_a_version_and_unknown_version_is_404(models, router_client):
    a, b = await models(2)
    config = {"services": {"svc-a": service_config([a.url]), "svc-b": service_config([b.url])},
              "endpoints": {"ep1": {"auth": {"mode": "none"}, "versions": {
                  "version-a": {"service": "svc-a", "trafficPercentile": 100},
                  "version-b": {"service": "svc-b", "trafficPercentile": 0}}}}}
    client, _ = await router_client(config)
    for _ in range(5):
        resp = await client.post("/api/v1/endpoint/ep1/score", data=b"x",
                                 headers={"azureml-model-deployment": "version-b"})
        assert resp.status == 200 and resp.headers["x-replica"] == b.name
    resp = await client.post("/api/v1/endpoint/ep1/score", data=b"x", headers={"azureml-model-deployment": "zzz"})
    assert resp.status == 404


async def test_endpoint_has_its_own_auth(models, router_client, key_files):
    (a,) = await models(1)
    config = {"services": {"svc-a": service_config([a.url])},
              "endpoints": {"ep1": {"auth": {"mode": "key", "keyFiles": [str(p) for p in key_files]},
                                    "versions": {"version-a": {"service": "svc-a"}}}}}
    client, _ = await router_client(config)
    assert (await client.post("/api/v1/endpoint/ep1/score", data=b"x")).status == 401
    from router_testkit import PRIMARY
    ok = await client.post("/api/v1/endpoint/ep1/score", data=b"x", headers={"Authorization": f"Bearer {PRIMARY}"})
    assert ok.status == 200

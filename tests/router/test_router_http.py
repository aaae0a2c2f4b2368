"""The scoring app end to end: real aiohttp replicas and the real router on 127.0.0.1."""
import asyncio
import socket

import aiohttp
import pytest

from router_testkit import PRIMARY, SECONDARY, service_config

AUTH = {"Authorization": f"Bearer {PRIMARY}"}
SCORE = "/api/v1/service/echo/score"
pytestmark = pytest.mark.asyncio


async def test_root_answers_healthy(models, router_client):
    (m,) = await models(1)
    client, _ = await router_client({"services": {"echo": service_config([m.url])}})
    resp = await client.get("/")
    assert resp.status == 200 and await resp.text() == "Healthy"


async def test_scores_with_key_and_passes_request_id_but_not_the_key(models, router_client, key_files):
    (m,) = await models(1)
    client, _ = await router_client({"services": {"echo": service_config([m.url], key_files)}})
    resp = await client.post(SCORE, data=b'{"data": [1, 2]}', headers={**AUTH, "x-request-id": "abc-123"})
    assert resp.status == 200
    assert await resp.read() == b'{"data": [1, 2]}'
    assert resp.headers["x-request-id"] == "abc-123"
    seen = m.requests[-1]["headers"]
    assert seen["x-request-id"] == "abc-123"
    assert "Authorization" not in seen  # the model never sees the caller's key

    resp = await client.get(SCORE + "?a=1", headers={"Authorization": f"Bearer {SECONDARY}"})
    assert resp.status == 200
    created = resp.headers["x-request-id"]
    assert len(created) == 32 and m.requests[-1]["headers"]["x-request-id"] == created
    assert m.requests[-1]["query"] == {"a": "1"}


async def test_request_id_with_unsafe_characters_is_replaced(models, router_client):
    (m,) = await models(1)
    client, _ = await router_client({"services": {"echo": service_config([m.url])}})
    forged = 'x", "status": 200, "y": "' + "z" * 200
    resp = await client.get(SCORE, headers={"x-request-id": forged})
    assert resp.status == 200 and len(resp.headers["x-request-id"]) == 32


async def test_swagger_is_proxied(models, router_client):
    (m,) = await models(1)
    client, _ = await router_client({"services": {"echo": service_config([m.url])}})
    resp = await client.get("/api/v1/service/echo/swagger.json")
    assert resp.status == 200 and (await resp.json())["model"] == m.name


async def test_unknown_service_and_endpoint_are_404(models, router_client):
    (m,) = await models(1)
    client, _ = await router_client({"services": {"echo": service_config([m.url])}})
    assert (await client.post("/api/v1/service/nope/score", data=b"x")).status == 404
    assert (await client.post("/api/v1/endpoint/nope/score", data=b"x")).status == 404
    assert (await client.get("/api/v1/service/nope/swagger.json")).status == 404
    assert m.requests == []


async def test_missing_or_wrong_key_is_401_with_the_same_answer(models, router_client, key_files):
    (m,) = await models(1)
    client, _ = await router_client({"services": {"echo": service_config([m.url], key_files)}})
    answers = set()
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": PRIMARY},
                    {"Authorization": f"Basic {PRIMARY}"}, {"Authorization": "Bearer "}):
        resp = await client.post(SCORE, data=b"x", headers=headers)
        assert resp.status == 401 and resp.headers["WWW-Authenticate"] == "Bearer"
        answers.add(await resp.text())
    assert len(answers) == 1 and m.requests == []


async def test_rotated_key_file_takes_effect_without_restart(models, router_client, key_files, monkeypatch):
    import router.auth
    monkeypatch.setattr(router.auth, "KEY_FILE_RECHECK_SECONDS", 0.0)
    (m,) = await models(1)
    client, _ = await router_client({"services": {"echo": service_config([m.url], key_files)}})
    assert (await client.get(SCORE, headers=AUTH)).status == 200
    key_files[0].write_text("a-brand-new-primary-key-with-other-length")
    assert (await client.get(SCORE, headers=AUTH)).status == 401
    new = {"Authorization": "Bearer a-brand-new-primary-key-with-other-length"}
    assert (await client.get(SCORE, headers=new)).status == 200
    assert (await client.get(SCORE, headers={"Authorization": f"Bearer {SECONDARY}"})).status == 200


async def test_upload_over_limit_by_content_length_is_413_before_the_body_is_read(models, router_client):
    """A 100 MB + 1 byte upload: the router answers 413 from the headers alone; no body byte is sent."""
    (m,) = await models(1)
    client, _ = await router_client({"services": {"echo": service_config([m.url])}})
    limit = 100 * 1024 * 1024
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(f"POST {SCORE} HTTP/1.1\r\nHost: x\r\nContent-Length: {limit + 1}\r\n\r\n".encode())
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), 10)
    assert status_line.startswith(b"HTTP/1.1 413")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert b"Connection: close" in head or b"connection: close" in head.lower()
    writer.close()
    assert m.requests == [] and m.received_bytes == 0


async def test_upload_at_the_limit_passes_and_one_byte_over_is_413(models, router_client):
    (m,) = await models(1)
    client, _ = await router_client({"services": {"echo": service_config([m.url], maxBodyBytes=1000)}})
    assert (await client.post(SCORE, data=b"a" * 1000)).status == 200
    assert (await client.post(SCORE, data=b"a" * 1001)).status == 413


async def test_chunked_upload_is_cut_off_once_it_passes_the_limit(models, router_client):
    (m,) = await models(1)
    client, _ = await router_client({"services": {"echo": service_config([m.url], maxBodyBytes=300_000)}})
    sent = 0

    async def body(n_chunks):
        nonlocal sent
        for _ in range(n_chunks):
            sent += 65536
            yield b"b" * 65536

    ok = await client.post(SCORE, data=body(4))  # 256 KiB, chunked, under the limit
    assert ok.status == 200 and len(await ok.read()) == 4 * 65536
    sent = 0
    try:
        resp = await client.post(SCORE, data=body(200))  # 12.5 MiB
        status = resp.status
    except aiohttp.ClientError:  # the router may close the connection while we are still sending
        status = 413
    assert status == 413
    assert m.received_bytes < 4 * 65536 + 1_000_000  # the upstream never got the oversized body whole


async def test_large_bodies_stream_both_ways(models, router_client):
    (m,) = await models(1)
    client, _ = await router_client({"services": {"echo": service_config([m.url])}})
    payload = bytes(range(256)) * (20 * 1024 * 4)  # 20 MiB
    resp = await client.post(SCORE, data=payload)
    assert resp.status == 200 and await resp.read() == payload
    resp = await client.get(SCORE + "?big=5000000")
    assert resp.status == 200
    total = 0
    async for chunk in resp.content.iter_chunked(1 << 16):
        total += len(chunk)
    assert total == 5_000_000


async def test_queue_wait_exceeded_is_503_and_queue_is_fifo(models, router_client):
    (m,) = await models(1)
    client, router = await router_client({"services": {"echo": service_config(
        [m.url], maxConcurrentPerReplica=1, maxQueueWaitMs=300)}})
    slow = asyncio.ensure_future(client.get(SCORE + "?sleep=2"))
    for _ in range(200):
        if m.in_flight:
            break
        await asyncio.sleep(0.01)
    resp = await client.get(SCORE)
    assert resp.status == 503
    assert (await slow).status == 200
    assert m.peak == 1  # the per-replica cap held


async def test_waiting_requests_get_the_slot_in_arrival_order(models, router_client):
    (m,) = await models(1)
    client, _ = await router_client({"services": {"echo": service_config(
        [m.url], maxConcurrentPerReplica=1, maxQueueWaitMs=5000)}})
    tasks = []
    for i in range(5):
        tasks.append(asyncio.ensure_future(client.get(SCORE + f"?sleep=0.1&n={i}")))
        await asyncio.sleep(0.05)
    assert [r.status for r in await asyncio.gather(*tasks)] == [200] * 5
    assert [r["query"]["n"] for r in m.requests] == ["0", "1", "2", "3", "4"]
    assert m.peak == 1


async def test_no_ready_replica_is_503(router_client):
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens here: connection refused
    client, router = await router_client({"services": {"echo": service_config(
        [f"http://127.0.0.1:{port}"], maxQueueWaitMs=200)}})
    resp = await client.get(SCORE)
    assert resp.status in (502, 503)
    # The replica is now ejected, so the next request waits for a slot and gets 503.
    assert (await client.get(SCORE)).status == 503
    assert router.services["echo"].pool.ready == 0


async def test_timeout_is_504_and_the_slot_stays_taken_until_the_replica_answers(models, router_client):
    (m,) = await models(1)
    client, router = await router_client({"services": {"echo": service_config(
        [m.url], maxConcurrentPerReplica=1, scoringTimeoutMs=300, maxQueueWaitMs=100, replicaTimeoutMs=5000)}})
    pool = router.services["echo"].pool
    resp = await client.get(SCORE + "?sleep=2.5")
    assert resp.status == 504
    assert pool.in_flight == 1  # the replica is still computing
    assert (await client.get(SCORE)).status == 503
    for _ in range(200):  # bounded: the replica answers after 2.5 s
        if pool.in_flight == 0:
            break
        await asyncio.sleep(0.05)
    assert pool.in_flight == 0
    assert (await client.get(SCORE)).status == 200
    assert m.peak == 1


async def test_slot_held_after_504_is_freed_when_the_replica_timeout_passes(models, router_client):
    (m,) = await models(1)
    client, router = await router_client({"services": {"echo": service_config(
        [m.url], maxConcurrentPerReplica=1, scoringTimeoutMs=200, replicaTimeoutMs=600)}})
    pool = router.services["echo"].pool
    assert (await client.get(SCORE + "?sleep=30")).status == 504
    assert pool.in_flight == 1
    for _ in range(100):  # bounded: freed about 0.6 s after dispatch, long before the replica answers
        if pool.in_flight == 0:
            break
        await asyncio.sleep(0.05)
    assert pool.in_flight == 0  # freed while the replica was still sleeping (30 s)


async def test_replica_crash_is_502(models, router_client):
    (m,) = await models(1)
    client, router = await router_client({"services": {"echo": service_config([m.url])}})
    resp = await client.post(SCORE + "?crash=1", data=b"x")
    assert resp.status == 502
    assert router.services["echo"].pool.in_flight == 0
    assert (await client.post(SCORE, data=b"y")).status == 200


async def test_replica_failing_mid_answer_cuts_the_client_off(models, router_client):
    (m,) = await models(1)
    client, router = await router_client({"services": {"echo": service_config([m.url])}})
    resp = await client.get(SCORE + "?big=4000000&cut=1")
    assert resp.status == 200  # the status line had been passed on already
    try:
        await resp.read()
        complete = True
    except aiohttp.ClientPayloadError:
        complete = False
    assert not complete  # the client can tell the answer is incomplete
    assert router.services["echo"].pool.in_flight == 0
    assert (await client.get(SCORE)).status == 200


async def test_expect_continue_with_oversized_body_gets_413_not_100(models, router_client):
    (m,) = await models(1)
    client, _ = await router_client({"services": {"echo": service_config([m.url], maxBodyBytes=1000)}})
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(f"POST {SCORE} HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 1001\r\n\r\n".encode())
    await writer.drain()
    assert (await asyncio.wait_for(reader.readline(), 10)).startswith(b"HTTP/1.1 413")
    writer.close()
    # Within the limit the client is invited to send, and the request goes through.
    resp = await client.post(SCORE, data=b"z" * 1000, expect100=True)
    assert resp.status == 200 and await resp.read() == b"z" * 1000
    assert len(m.requests) == 1


async def test_replica_killed_mid_request_fails_only_that_request(models, router_client):
    victim, survivor = await models(2)
    client, router = await router_client({"services": {"echo": service_config(
        [victim.url, survivor.url], maxConcurrentPerReplica=2)}})
    # Least outstanding puts one slow request on each replica.
    slow = [asyncio.ensure_future(client.get(SCORE + "?sleep=1")) for _ in range(2)]
    for _ in range(100):
        if victim.in_flight and survivor.in_flight:
            break
        await asyncio.sleep(0.01)
    assert victim.in_flight == 1 and survivor.in_flight == 1
    await victim.kill()  # the replica dies while it computes
    others = await asyncio.gather(*(client.post(SCORE, data=b"%d" % i) for i in range(10)))
    assert [r.status for r in others] == [200] * 10  # refused connections are retried on the survivor
    assert sorted([(await s).status for s in slow]) == [200, 502]
    assert router.services["echo"].pool.in_flight == 0


async def test_connection_refused_is_retried_and_replica_probed_back(models, router_client):
    (good,) = await models(1)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    client, router = await router_client({"services": {"echo": service_config(
        [f"http://127.0.0.1:{port}", good.url], maxConcurrentPerReplica=8)}})
    pool = router.services["echo"].pool
    statuses = [(await client.post(SCORE, data=b"x")).status for _ in range(6)]
    assert statuses == [200] * 6
    assert pool.replicas[f"http://127.0.0.1:{port}"].ejected
    assert pool.ready == 1
    # Bring the refusing replica up on the same port: the prober readmits it.
    from aiohttp.test_utils import TestServer
    from router_testkit import Model
    revived = Model("revived")
    revived.server = TestServer(revived.app(), host="127.0.0.1", port=port)
    await revived.server.start_server()
    try:
        for _ in range(100):
            if pool.ready == 2:
                break
            await asyncio.sleep(0.05)
        assert pool.ready == 2
        for _ in range(10):
            assert (await client.post(SCORE, data=b"x")).status == 200
        assert revived.requests  # it takes traffic again
    finally:
        await revived.server.close()


async def test_least_outstanding_spreads_concurrent_requests(models, router_client):
    a, b = await models(2)
    client, _ = await router_client({"services": {"echo": service_config([a.url, b.url],
                                                                          maxConcurrentPerReplica=2)}})
    results = await asyncio.gather(*(client.get(SCORE + "?sleep=0.2") for _ in range(4)))
    assert [r.status for r in results] == [200] * 4
    assert a.peak == 2 and b.peak == 2  # 4 concurrent requests over 2 x 2 slots, none queued behind another


async def test_admin_metrics_health_ready_and_peer_load(models, router_client):
    from aiohttp.test_utils import TestClient, TestServer
    (m,) = await models(1)
    client, router = await router_client({"services": {"echo": service_config([m.url])}})
    await client.get(SCORE)
    await client.get(SCORE + "?sleep=0.3")
    await client.get("/api/v1/service/echo/swagger.json")
    admin = TestClient(TestServer(router.admin_app(), host="127.0.0.1"))
    await admin.start_server()
    try:
        text = await (await admin.get("/metrics")).text()
        assert 'router_requests_total{service="echo",status="200"} 3.0' in text
        # Cumulative buckets, as Prometheus reads `le`: the 0.3 s answer is above 0.25 s and within 0.5 s.
        assert 'router_request_seconds_bucket{le="0.25",service="echo"} 2.0' in text
        assert 'router_request_seconds_bucket{le="0.5",service="echo"} 3.0' in text
        assert 'router_request_seconds_bucket{le="+Inf",service="echo"} 3.0' in text
        assert 'router_request_seconds_count{service="echo"} 3.0' in text
        assert 'router_retries_total{service="echo"} 0.0' in text
        assert 'router_auth_failures_total{service="echo"} 0.0' in text
        assert 'router_replicas_ready{service="echo"} 1.0' in text
        assert (await admin.get("/healthz")).status == 200
        assert (await admin.get("/readyz")).status == 200
        assert await (await admin.get("/peer/load")).json() == {"echo": 0}
        router.ready = False
        assert (await admin.get("/readyz")).status == 503
    finally:
        await admin.close()

"""Hostile clients against the real router on 127.0.0.1, spoken to byte by byte: framing tricks, slow
bodies, clients that never read, replicas that die with requests in hand, and heads that break the rules.
Every case here held the router's slots, lost data or replayed a request before (issue 17)."""
import asyncio
import socket

import pytest

import router.http.server
from router_testkit import PRIMARY, service_config, until

pytestmark = pytest.mark.asyncio
SCORE = "/api/v1/service/echo/score"


async def exchange(port: int, data: bytes, seconds: float = 10) -> bytes:
    """Send `data`, then read until the router closes the connection (bounded)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(), seconds)
    finally:
        writer.close()


@pytest.fixture
def quick_sweep(monkeypatch):
    """The server's timeout sweep every 50 ms instead of every second, so short limits act quickly."""
    monkeypatch.setattr(router.http.server, "SWEEP_SECONDS", 0.05)


# ---- 1. request smuggling: one view of the framing ---------------------------------------------

async def test_two_transfer_encoding_headers_are_400_and_nothing_reaches_the_replica(models, router_client):
    (m,) = await models(1)
    client, router = await router_client({"services": {"echo": service_config([m.url])}})
    for framing in (b"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
                    b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
                    b"Transfer-Encoding: gzip, chunked\r\n"):
        answer = await exchange(client.port, b"POST " + SCORE.encode() + b" HTTP/1.1\r\nHost: x\r\n" + framing +
                                b"\r\n5\r\nhello\r\n0\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 400 ") and b"Connection: close" in answer, framing
    # HTTP/1.0 has no chunked coding at all (RFC 9112 6.1).
    answer = await exchange(client.port, b"POST " + SCORE.encode() + b" HTTP/1.0\r\nTransfer-Encoding: chunked\r\n"
                            b"\r\n5\r\nhello\r\n0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert m.requests == [] and router.services["echo"].pool.in_flight == 0
    # One `chunked` (any case, padded) is the framing httptools reads too, and the body arrives whole.
    answer = await exchange(client.port, b"POST " + SCORE.encode() + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                            b"Transfer-Encoding:  Chunked \r\n\r\n5\r\nhello\r\n0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"hello")


# ---- 2. slow body upload: 408 within the body timeout ----------------------------------------------

async def test_a_body_trickled_a_byte_at_a_time_is_408_within_the_body_timeout(models, router_client, quick_sweep):
    (m,) = await models(1)
    client, router = await router_client({"services": {"echo": service_config([m.url], maxConcurrentPerReplica=1)},
                                          "router": {"limits": {"bodyTimeoutSeconds": 0.5}}})
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(f"POST {SCORE} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n".encode())
    answer = b""
    for _ in range(50):  # one byte every 0.1 s: never idle for long, but far too slow in total (bounded: 5 s)
        writer.write(b"x")
        try:
            # read(n), not read(): a timeout that cancels read() mid-answer loses what it had already taken in.
            answer = await asyncio.wait_for(reader.read(65536), 0.1)
            break
        except asyncio.TimeoutError:
            pass
        except ConnectionError:
            break
    if answer:
        answer += await asyncio.wait_for(reader.read(), 5)  # the rest, up to the close
    writer.close()
    assert answer.startswith(b"HTTP/1.1 408 ") and b"Connection: close" in answer
    assert m.requests == []  # a small body is read whole first: the replica never saw the request
    assert router.services["echo"].pool.in_flight == 0
    assert (await client.post(SCORE, data=b"in time")).status == 200  # the slot is there for others


async def test_a_streamed_body_that_stalls_is_408_and_frees_the_replica_slot(models, router_client, quick_sweep):
    (m,) = await models(1)
    client, router = await router_client({"services": {"echo": service_config([m.url], maxConcurrentPerReplica=1)},
                                          "router": {"limits": {"bodyTimeoutSeconds": 0.5}}})
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(f"POST {SCORE} HTTP/1.1\r\nHost: x\r\nContent-Length: 300000\r\n\r\n".encode() + b"s" * 100_000)
    await writer.drain()  # a third of the body, then nothing more
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert await until(lambda: router.services["echo"].pool.in_flight == 0)
    assert (await client.post(SCORE, data=b"next")).status == 200


async def test_a_slow_body_does_not_hold_shutdown_for_the_whole_grace(models, router_client, quick_sweep):
    (m,) = await models(1)
    client, router = await router_client({"services": {"echo": service_config([m.url])},
                                          "router": {"limits": {"bodyTimeoutSeconds": 0.5}}})
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(f"POST {SCORE} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nx".encode())
    await writer.drain()
    await asyncio.sleep(0.1)
    scoring = client.server
    loop = asyncio.get_running_loop()
    started = loop.time()
    await scoring.shutdown(grace=20)
    assert loop.time() - started < 10  # the body timeout ended it, not the 20 s grace
    assert (await asyncio.wait_for(reader.read(), 5)).startswith(b"HTTP/1.1 408 ")
    writer.close()


# ---- 3. slow reader: the slot goes back when the replica's answer is in -----------------------------

def non_reading_client(port: int, request: bytes) -> socket.socket:
    """A client that sends `request` and then reads nothing, with a small receive window."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(request)
    return sock


async def test_a_client_that_does_not_read_frees_the_slot_once_the_answer_is_in(models, router_client):
    (m,) = await models(1)
    client, router = await router_client({"services": {"echo": service_config([m.url], maxConcurrentPerReplica=1)},
                                          "router": {"limits": {"responseBufferBytes": 8 * 1024 * 1024}}})
    pool = router.services["echo"].pool
    sock = non_reading_client(client.port, f"GET {SCORE}?big=6000000 HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    try:
        assert await until(lambda: len(m.requests) == 1)
        # 6 MB is more than the sockets hold but within the response buffer: the answer is read from the
        # replica whole, so its slot is free while the client has read nothing.
        assert await until(lambda: pool.in_flight == 0, 5)
        resp = await client.post(SCORE, data=b"next")
        assert resp.status == 200 and await resp.read() == b"next"
    finally:
        sock.close()


async def test_a_client_that_does_not_read_a_large_answer_is_cut_off_after_the_send_timeout(
        models, router_client, quick_sweep):
    (m,) = await models(1)
    client, router = await router_client({"services": {"echo": service_config([m.url], maxConcurrentPerReplica=1)},
                                          "router": {"limits": {"sendTimeoutSeconds": 0.5}}})
    pool = router.services["echo"].pool
    big = 16 * 1024 * 1024  # far more than the response buffer and the sockets hold
    sock = non_reading_client(client.port, f"GET {SCORE}?big={big} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    try:
        assert await until(lambda: pool.in_flight == 1)
        assert await until(lambda: pool.in_flight == 0, 8)  # the client was cut off; the slot is back
        assert (await client.post(SCORE, data=b"next")).status == 200
        sock.settimeout(5)
        received = 0
        try:
            while chunk := sock.recv(1 << 20):  # bounded: the router closed the connection
                received += len(chunk)
        except ConnectionError:
            pass
        assert received < big  # the client got a cut-off answer, not all of it
    finally:
        sock.close()


# ---- 4. no replays: a request the replica may have received is never sent twice --------------------

async def test_requests_a_killed_replica_had_received_are_not_sent_again(models, router_client):
    victim, survivor = await models(2)
    client, router = await router_client({"services": {"echo": service_config(
        [victim.url, survivor.url], maxConcurrentPerReplica=4)}})
    # Warm both replicas up, so the next requests go on kept-alive connections.
    await asyncio.gather(*(client.post(SCORE, data=b"warm") for _ in range(8)))
    assert victim.requests and survivor.requests
    before = len(victim.requests), len(survivor.requests)
    slow = [asyncio.ensure_future(client.post(SCORE + "?sleep=1", data=b"%d" % i, headers={"x-request-id": f"r{i}"}))
            for i in range(8)]
    assert await until(lambda: victim.in_flight >= 1 and victim.in_flight + survivor.in_flight == 8)
    taken = victim.in_flight
    await victim.kill()  # the replica dies with requests in hand
    statuses = sorted([(await s).status for s in slow])
    assert statuses == [200] * (8 - taken) + [502] * taken
    seen = [r["headers"]["x-request-id"] for r in victim.requests[before[0]:] + survivor.requests[before[1]:]]
    assert sorted(seen) == sorted(f"r{i}" for i in range(8))  # each executed once: none replayed
    assert router.services["echo"].pool.in_flight == 0


# ---- 5. strictness where the standards say so ---------------------------------------------------------

async def test_the_bearer_scheme_is_case_insensitive(models, router_client, key_files):
    (m,) = await models(1)
    client, _ = await router_client({"services": {"echo": service_config([m.url], key_files)}})
    for scheme in ("Bearer", "bearer", "BEARER"):
        assert (await client.post(SCORE, data=b"x", headers={"Authorization": f"{scheme} {PRIMARY}"})).status == 200
    for wrong in (f"Basic {PRIMARY}", f"Bearer{PRIMARY}", PRIMARY, "Bearer "):
        assert (await client.post(SCORE, data=b"x", headers={"Authorization": wrong})).status == 401


async def test_two_authorization_headers_are_400(models, router_client, key_files):
    (m,) = await models(1)
    client, _ = await router_client({"services": {"echo": service_config([m.url], key_files)}})
    for first, second in ((PRIMARY, "wrong"), ("wrong", PRIMARY), (PRIMARY, PRIMARY)):
        answer = await exchange(client.port, f"POST {SCORE} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {first}\r\n"
                                f"authorization: Bearer {second}\r\nContent-Length: 1\r\n\r\nx".encode())
        assert answer.startswith(b"HTTP/1.1 400 ")
    assert m.requests == []


async def test_host_is_required_once_on_http_1_1(models, router_client):
    (m,) = await models(1)
    client, _ = await router_client({"services": {"echo": service_config([m.url])}})
    assert (await exchange(client.port, f"GET {SCORE} HTTP/1.1\r\n\r\n".encode())).startswith(b"HTTP/1.1 400 ")
    assert (await exchange(client.port, f"GET {SCORE} HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n".encode())
            ).startswith(b"HTTP/1.1 400 ")
    assert m.requests == []
    assert (await exchange(client.port, f"GET {SCORE} HTTP/1.0\r\n\r\n".encode())).startswith(b"HTTP/1.1 200 ")


async def test_only_http_1_0_and_1_1_are_served(models, router_client):
    (m,) = await models(1)
    client, _ = await router_client({"services": {"echo": service_config([m.url])}})
    for version in (b"HTTP/0.9", b"HTTP/2.0", b"HTTP/1.2", b"HTTP/3.0"):
        answer = await exchange(client.port, b"GET " + SCORE.encode() + b" " + version + b"\r\nHost: x\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 505 "), version
    assert m.requests == []


async def test_the_service_name_is_matched_on_the_raw_path(models, router_client):
    (m,) = await models(1)
    client, _ = await router_client({"services": {"echo": service_config([m.url])}})
    for path in ("/api/v1/service/ech%6F/score", "/api/v1/service%2Fecho/score", "/api/v1/service/echo%2Fscore",
                 "/api/v1/service/echo/sc%6Fre"):
        answer = await exchange(client.port, f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        assert answer.startswith(b"HTTP/1.1 404 "), path
    assert m.requests == []


async def test_too_many_headers_are_431(models, router_client):
    (m,) = await models(1)
    client, _ = await router_client({"services": {"echo": service_config([m.url])},
                                     "router": {"limits": {"maxHeaderCount": 20}}})
    head = f"GET {SCORE} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
    answer = await exchange(client.port, (head + "".join(f"x-h{i}: v\r\n" for i in range(18)) + "\r\n").encode())
    assert answer.startswith(b"HTTP/1.1 200 ")  # 20 headers: at the limit
    answer = await exchange(client.port, (head + "".join(f"x-h{i}: v\r\n" for i in range(19)) + "\r\n").encode())
    assert answer.startswith(b"HTTP/1.1 431 ")


# ---- found in review: the limits must not hurt well-behaved clients ----------------------------------

async def test_a_client_reading_a_large_answer_steadily_is_not_cut_off(models, router_client, quick_sweep):
    (m,) = await models(1)
    client, _ = await router_client({"services": {"echo": service_config([m.url])},
                                     "router": {"limits": {"sendTimeoutSeconds": 0.5}}})
    big = 4 * 1024 * 1024
    sock = socket.create_connection(("127.0.0.1", client.port))
    sock.sendall(f"GET {SCORE}?big={big} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    sock.setblocking(False)
    received = b""
    try:
        for _ in range(400):  # at most 64 KiB per 50 ms, about 1.3 MB/s, so the buffer stays full between sweeps (bounded: ~20 s)
            try:
                chunk = sock.recv(65536)
            except BlockingIOError:
                chunk = None
            if chunk == b"":
                break
            received += chunk or b""
            await asyncio.sleep(0.05)
    finally:
        sock.close()
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ") and len(body) > big  # all of it (chunk framing adds a little)


async def test_a_kept_alive_replica_connection_reads_again_after_a_buffered_answer(models, router_client, monkeypatch):
    """An answer that ends in the read that filled its buffer leaves the replica's socket paused; the idle
    connection must read again, or the next answer on it is never seen (504)."""
    import router.http.readflow
    monkeypatch.setattr(router.http.readflow, "HIGH_WATER", 1)  # every answer fills its buffer
    (m,) = await models(1)
    client, _ = await router_client({"services": {"echo": service_config([m.url], scoringTimeoutMs=3000)}})
    for i in range(3):
        resp = await client.post(SCORE, data=b"n%d" % i)
        assert resp.status == 200 and await resp.read() == b"n%d" % i


async def test_expect_continue_waiting_in_the_queue_is_not_timed_out(models, router_client, quick_sweep):
    """The client sends nothing until `100 Continue`, which comes only when a slot is free: the body's
    time starts then, not at the head."""
    (m,) = await models(1)
    client, _ = await router_client({"services": {"echo": service_config(
        [m.url], maxConcurrentPerReplica=1, maxQueueWaitMs=5000)}, "router": {"limits": {"bodyTimeoutSeconds": 0.5}}})
    busy = asyncio.ensure_future(client.get(SCORE + "?sleep=1.5"))
    assert await until(lambda: m.in_flight == 1)
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(f"POST {SCORE} HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 100000\r\n"
                 f"Connection: close\r\n\r\n".encode())
    interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert interim.startswith(b"HTTP/1.1 100 ")
    writer.write(b"e" * 100000)
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert (await busy).status == 200


async def test_a_flood_of_pipelined_requests_is_refused_not_buffered(models, router_client):
    (m,) = await models(1)
    client, _ = await router_client({"services": {"echo": service_config([m.url])}})
    flood = f"GET {SCORE}?sleep=0.2 HTTP/1.1\r\nHost: x\r\n\r\n".encode() * 200
    answer = await exchange(client.port, flood)
    assert 1 <= answer.count(b"HTTP/1.1 200 ") < 200  # the connection closed instead of queueing 200
    assert len(m.requests) < 200


async def test_a_body_that_stalls_while_queued_never_reaches_a_replica(models, router_client, quick_sweep):
    (m,) = await models(1)
    client, router = await router_client({"services": {"echo": service_config(
        [m.url], maxConcurrentPerReplica=1, maxQueueWaitMs=5000)}, "router": {"limits": {"bodyTimeoutSeconds": 0.5}}})
    busy = asyncio.ensure_future(client.get(SCORE + "?sleep=1.5"))
    assert await until(lambda: m.in_flight == 1)
    reader, writer = await asyncio.open_connection(client.host, client.port)
    # A streamed body (over one chunk), a little of it sent, then nothing: too little for the router to
    # hold the client back, so its clock runs and it times out in the queue.
    writer.write(f"POST {SCORE} HTTP/1.1\r\nHost: x\r\nContent-Length: 300000\r\n\r\n".encode() + b"q" * 1000)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert (await busy).status == 200
    assert len(m.requests) == 1  # only the busy one: the queued request was not sent on when its slot came
    assert router.services["echo"].pool.in_flight == 0


async def test_chunked_trailers_are_dropped_and_never_join_a_head(models, router_client, key_files):
    (m,) = await models(1)
    client, _ = await router_client({"services": {"echo": service_config([m.url], key_files)}})
    auth = f"Authorization: Bearer {PRIMARY}\r\n".encode()
    # The trailers repeat headers that may appear once: were they read as the head's, this would be a 400.
    first = (b"POST " + SCORE.encode() + b" HTTP/1.1\r\nHost: x\r\n" + auth + b"Transfer-Encoding: chunked\r\n\r\n"
             b"5\r\nhello\r\n0\r\nAuthorization: Bearer forged\r\nHost: y\r\n\r\n")
    second = b"POST " + SCORE.encode() + b" HTTP/1.1\r\nHost: x\r\n" + auth + b"Content-Length: 3\r\nConnection: close\r\n\r\nbye"
    answer = await exchange(client.port, first + second)
    assert answer.count(b"HTTP/1.1 200 ") == 2, answer
    assert b"\r\n\r\nhello" in answer and answer.endswith(b"bye")
    assert [r["headers"].get("content-length") for r in m.requests] == [None, "3"]

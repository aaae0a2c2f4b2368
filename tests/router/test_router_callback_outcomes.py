"""Every way a request forwarded in callbacks (`router/callback_forward.py`) can end leaves what
`proxy.forward` leaves: the slot given back and, when the replica answered whole on a kept-alive
connection, that connection reused. Replicas here speak raw HTTP on 127.0.0.1 and count connections."""
import asyncio
import gc
import io
import json
import re
import socket
import struct
import time
import warnings

import pytest
import pytest_asyncio

import router.callback_forward
import router.http.server
from router_testkit import RawServer, service_config, until

SCORE = "/api/v1/service/echo/score"
pytestmark = pytest.mark.asyncio


class SlowReplica(RawServer):
    """Keeps connections alive and counts them; answers with the request's query (`ok` without one), after
    `sleep=<s>` seconds if asked; `tail` in the query: a second, unasked-for answer follows in the same write
    (a replica whose answers run past their length), `partial`: the start of one; `garbage`: bytes that are not HTTP; `204` or `304`: that
    status, without a body; `close`: an answer with `Connection: close` (the replica closes after it)."""

    def __init__(self) -> None:
        self.connections = 0
        self.answered = 0

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            for _ in range(100):  # bounded
                head = await reader.readuntil(b"\r\n\r\n")
                target = head.split(b" ")[1]
                sleep = re.search(rb"sleep=([0-9.]+)", target)
                if sleep:
                    await asyncio.sleep(float(sleep[1]))
                body = target.partition(b"?")[2] or b"ok"
                answer = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
                if body in (b"204", b"304"):
                    answer = b"HTTP/1.1 %s Whatever\r\nETag: \"e\"\r\n\r\n" % body
                if body == b"close":
                    answer = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 5\r\n\r\nclose"
                if b"garbage" in body:
                    answer = b"\x00 not http at all\r\n\r\n"
                if body == b"partial":
                    answer += b"HTTP/1.1 200 OK\r\nX-Unasked: 1\r\n"  # the start of an answer, never finished
                if b"tail" in body:
                    answer += b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged"
                writer.write(answer)
                await writer.drain()
                self.answered += 1
                if body == b"close":
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest_asyncio.fixture
async def slow_replica():
    replica = SlowReplica()
    url = await replica.start()
    yield replica, url
    await replica.close()


async def test_after_a_504_in_callbacks_the_replica_connection_is_reused_once_it_answers(slow_replica, router_client,
                                                                                        in_callbacks):
    replica, url = slow_replica
    client, router_ = await router_client({"services": {"echo": service_config(
        [url], scoringTimeoutMs=200, replicaTimeoutMs=5000)}})
    pool = router_.services["echo"].pool
    assert (await client.get(SCORE)).status == 200  # opens the connection
    resp = await client.get(SCORE + "?sleep=0.5")
    assert resp.status == 504 and len(in_callbacks) == 1
    assert await until(lambda: replica.answered == 2 and pool.in_flight == 0)
    await asyncio.sleep(0.05)
    resp = await client.get(SCORE)
    assert resp.status == 200 and await resp.read() == b"ok"
    assert len(in_callbacks) == 2
    assert replica.connections == 1  # the answer the router stopped waiting for left the connection reusable


async def test_after_a_client_left_in_callbacks_the_replica_connection_is_reused_once_it_answers(
        slow_replica, router_client, in_callbacks):
    replica, url = slow_replica
    client, router_ = await router_client({"services": {"echo": service_config([url])}})
    pool = router_.services["echo"].pool
    assert (await client.get(SCORE)).status == 200
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(f"GET {SCORE}?sleep=0.3 HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await writer.drain()
    assert await until(lambda: pool.in_flight == 1)
    writer.close()
    assert await until(lambda: replica.answered == 2 and pool.in_flight == 0)
    await asyncio.sleep(0.05)
    resp = await client.get(SCORE)
    assert resp.status == 200 and await resp.read() == b"ok"
    assert len(in_callbacks) == 2
    assert replica.connections == 1


async def test_a_pipelined_request_never_takes_the_rest_of_the_answer_before_it(slow_replica, router_client,
                                                                               in_callbacks):
    """The first answer is forwarded from the replica's read, and the next pipelined request starts right
    there; it must not go on the connection whose read still holds bytes past that answer (an unasked-for
    answer here), or those bytes become its answer."""
    replica, url = slow_replica
    client, router_ = await router_client({"services": {"echo": service_config([url])}})
    assert (await client.get(SCORE)).status == 200  # opens the connection
    reader, writer = await asyncio.open_connection(client.host, client.port)
    try:
        writer.write(f"GET {SCORE}?n=1&tail HTTP/1.1\r\nHost: x\r\n\r\n"
                     f"GET {SCORE}?n=2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        answers = await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()
    assert answers.count(b"HTTP/1.1 200 OK") == 2, answers
    assert answers.endswith(b"\r\n\r\nn=2"), answers
    assert b"forged" not in answers
    assert router_.services["echo"].pool.in_flight == 0


async def test_shutdown_waits_for_a_request_in_callbacks_and_cuts_it_off_at_the_grace(slow_replica, router_client,
                                                                                     in_callbacks):
    replica, url = slow_replica
    client, router_ = await router_client({"services": {"echo": service_config([url])}})
    pool = router_.services["echo"].pool
    assert (await client.get(SCORE)).status == 200
    loop = asyncio.get_running_loop()
    waited = await asyncio.open_connection(client.host, client.port)
    cut = await asyncio.open_connection(client.host, client.port)
    waited[1].write(f"GET {SCORE}?sleep=0.4 HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert await until(lambda: pool.in_flight == 1)
    assert (await client.get(SCORE)).status == 200  # a second connection to the replica for the next one
    cut[1].write(f"GET {SCORE}?sleep=2 HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert await until(lambda: pool.in_flight == 2)
    assert len(in_callbacks) == 2
    started = loop.time()
    await client.server.shutdown(grace=0.6)
    assert 0.5 < loop.time() - started < 1.5  # the 2 s request held it for the grace, no longer
    answer = await asyncio.wait_for(waited[0].read(), 5)
    assert answer.startswith(b"HTTP/1.1 200 ") and b"Connection: close" in answer and answer.endswith(b"sleep=0.4")
    assert await asyncio.wait_for(cut[0].read(), 5) == b""  # cut off with nothing sent
    assert pool.in_flight == 1  # the replica still computes the cut-off request: its slot waits for it
    assert await until(lambda: pool.in_flight == 0)
    for _, writer in (waited, cut):
        writer.close()


class HeldReplica(RawServer):
    """Answers the first request on each connection at once; holds later ones until the test answers them
    itself (`writers`), so the test decides what the router reads from the replica and when."""

    def __init__(self) -> None:
        self.held: asyncio.Queue = asyncio.Queue()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await reader.readuntil(b"\r\n\r\n")
            await self.held.put(writer)
            await reader.read()  # until the router closes the connection
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def test_a_client_gone_before_the_handed_over_task_starts_is_499_and_leaves_no_coroutine_unawaited(
        router_client, in_callbacks):
    """The replica's headers announce a large answer, so the callbacks hand the request to a task; the client's
    reset is seen in the same turn of the loop just before, so the task is cancelled before its first step
    (asyncio runs ready I/O in the order it became ready: the reset is sent first)."""
    replica = HeldReplica()
    url = await replica.start()
    try:
        client, router_ = await router_client({"services": {"echo": service_config([url])}})
        router_.access_log._stream = io.StringIO()
        pool = router_.services["echo"].pool
        assert (await client.get(SCORE)).status == 200
        sock = socket.create_connection((client.host, client.port))
        sock.sendall(f"GET {SCORE} HTTP/1.1\r\nHost: x\r\nx-request-id: gone\r\n\r\n".encode())
        writer = await asyncio.wait_for(replica.held.get(), 5)
        assert len(in_callbacks) == 1 and pool.in_flight == 1
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()  # a reset, then (without yielding to the loop) the replica's headers
        writer.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n" + b"x" * 1000)
        time.sleep(0.05)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert await until(lambda: pool.in_flight == 0)
            await asyncio.sleep(0.3)
            gc.collect()
        router_.access_log.flush()
        lines = [json.loads(line) for line in router_.access_log._stream.getvalue().splitlines()]
        assert [(e["requestId"], e["status"]) for e in lines if e["requestId"] == "gone"] == [("gone", 499)]
        assert [str(w.message) for w in caught if "never awaited" in str(w.message)] == []
    finally:
        await replica.close()


async def test_pipelined_requests_in_one_read_are_answered_in_order_on_one_replica_connection(
        slow_replica, router_client, in_callbacks):
    replica, url = slow_replica
    client, router_ = await router_client({"services": {"echo": service_config([url])}})
    assert (await client.get(SCORE)).status == 200
    reader, writer = await asyncio.open_connection(client.host, client.port)
    try:
        writer.write(b"".join(f"GET {SCORE}?n={i} HTTP/1.1\r\nHost: x\r\n\r\n".encode() for i in range(5)) +
                     f"GET {SCORE}?n=5 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        answers = await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()
    bodies = [part.split(b"\r\n\r\n", 1)[1] for part in answers.split(b"HTTP/1.1 ")[1:]]
    assert bodies == [b"n=%d" % i for i in range(6)], answers
    assert replica.connections == 1 and router_.services["echo"].pool.in_flight == 0
    assert len(in_callbacks) >= 1


async def test_garbage_answered_in_callbacks_is_502_the_slot_freed_and_the_connection_dropped(
        slow_replica, router_client, in_callbacks):
    replica, url = slow_replica
    client, router_ = await router_client({"services": {"echo": service_config([url])}})
    pool = router_.services["echo"].pool
    assert (await client.get(SCORE)).status == 200
    resp = await client.get(SCORE + "?garbage")
    assert resp.status == 502 and await resp.read() == b"replica failed\n"
    assert len(in_callbacks) == 1 and pool.in_flight == 0
    resp = await client.get(SCORE)
    assert resp.status == 200 and await resp.read() == b"ok"
    assert replica.connections == 2  # the connection that carried garbage was not used again


async def test_bodiless_and_closing_answers_in_callbacks_keep_the_slot_count_and_connection_reuse_right(
        slow_replica, router_client, in_callbacks):
    replica, url = slow_replica
    client, router_ = await router_client({"services": {"echo": service_config([url])}})
    pool = router_.services["echo"].pool
    assert (await client.get(SCORE)).status == 200
    for status in (204, 304):
        resp = await client.get(SCORE + f"?{status}")
        assert resp.status == status and await resp.read() == b"" and "Content-Length" not in resp.headers
        assert resp.headers["ETag"] == '"e"'
    assert len(in_callbacks) == 2 and replica.connections == 1 and pool.in_flight == 0
    resp = await client.get(SCORE + "?close")
    assert resp.status == 200 and await resp.read() == b"close" and "Connection" not in resp.headers
    assert len(in_callbacks) == 3 and pool.in_flight == 0
    resp = await client.get(SCORE)
    assert resp.status == 200 and await resp.read() == b"ok"
    assert replica.connections == 2  # after `Connection: close`, a new connection


async def test_a_request_refused_in_the_queue_logs_no_replica_even_if_the_callbacks_picked_one(
        slow_replica, router_client, in_callbacks):
    """Two requests arrive in one turn of the loop with one slot free and no idle connection: both are picked
    for the replica in callbacks and go on to `forward`; the second finds the slot taken and gets 503 from the
    queue. Its log line names no replica, as `forward` alone would log it: it never reached one."""
    replica, url = slow_replica
    client, router_ = await router_client({"services": {"echo": service_config(
        [url], maxConcurrentPerReplica=1, maxQueueWaitMs=100)}})
    router_.access_log._stream = io.StringIO()
    socks = [socket.create_connection((client.host, client.port)) for _ in range(2)]
    try:
        for i, sock in enumerate(socks):  # both sent before the loop runs again
            sock.sendall(f"GET {SCORE}?sleep=0.5 HTTP/1.1\r\nHost: x\r\nx-request-id: q{i}\r\n\r\n".encode())
        assert await until(lambda: len(router_.access_log._lines) == 1)
        router_.access_log.flush()
        (line,) = [json.loads(text) for text in router_.access_log._stream.getvalue().splitlines()]
        assert line["status"] == 503 and line["replica"] is None, line
        assert await until(lambda: replica.answered == 1)
    finally:
        for sock in socks:
            sock.close()


class EchoReplica(RawServer):
    """Keeps connections alive, echoes each request's body, and keeps each connection's writer (`writers`) so a
    test can reset a connection itself; counts the bodies it received."""

    def __init__(self) -> None:
        self.writers: list[asyncio.StreamWriter] = []
        self.bodies: list[bytes] = []

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        try:
            for _ in range(100):  # bounded
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(re.search(rb"(?i)content-length: *(\d+)", head)[1])
                body = await reader.readexactly(length)
                self.bodies.append(body)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


# On uvloop the stand-in replica's abort (on the test's loop) leaves only after the request is written: a 502, rightly.
@pytest.mark.asyncio_only
async def test_a_kept_alive_connection_found_reset_in_callbacks_sends_the_body_once_on_a_new_one(
        router_client, in_callbacks):
    """The replica resets its idle connection and, in the same turn of the loop, a request comes that the
    callbacks would send on it: the write fails at once, so the request goes (once, body and all) on a new
    connection, counted as a retry."""
    replica = EchoReplica()
    url = await replica.start()
    try:
        client, router_ = await router_client({"services": {"echo": service_config([url])}})
        router_.access_log._stream = io.StringIO()
        assert (await client.post(SCORE, data=b"warm")).status == 200
        sock = socket.create_connection((client.host, client.port))
        try:
            await asyncio.sleep(0.1)  # the router has accepted the connection and reads it
            idle = replica.writers[0].get_extra_info("socket")
            idle.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            replica.writers[0].transport.abort()  # a reset, then (without yielding to the loop) the request
            sock.sendall(f"POST {SCORE} HTTP/1.1\r\nHost: x\r\nx-request-id: again\r\nContent-Length: 7\r\n\r\n"
                         "payload".encode())
            time.sleep(0.05)
            sock.settimeout(5)
            answer = await asyncio.get_running_loop().run_in_executor(None, sock.recv, 4096)
        finally:
            sock.close()
        assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"\r\n\r\npayload"), answer
        assert len(in_callbacks) == 0  # the callbacks found the connection reset and handed it on: a retry (below)
        assert replica.bodies == [b"warm", b"payload"] and len(replica.writers) == 2
        assert router_.services["echo"].pool.in_flight == 0
        router_.access_log.flush()
        (line,) = [json.loads(text) for text in router_.access_log._stream.getvalue().splitlines()
                   if '"again"' in text]
        assert line["status"] == 200 and line["retries"] == 1 and line["replica"] == url
        assert router_.metrics.registry.get_sample_value("router_retries_total", {"service": "echo"}) == 1
    finally:
        await replica.close()


@pytest.mark.parametrize("warm", [False, True], ids=["forward", "callbacks"])
async def test_a_connection_left_with_half_an_unasked_for_answer_is_not_used_again(slow_replica, router_client,
                                                                                   warm):
    """A replica whose answer ran on into the start of another: the next request on that connection would be
    read against it (and fail after the replica had it), so the connection is dropped instead."""
    replica, url = slow_replica
    client, router_ = await router_client({"services": {"echo": service_config([url])}})
    if warm:  # the request under test then goes in callbacks
        assert (await client.get(SCORE)).status == 200
    resp = await client.get(SCORE + "?partial")
    assert resp.status == 200 and await resp.read() == b"partial"
    await asyncio.sleep(0.05)
    resp = await client.get(SCORE + "?next")
    assert resp.status == 200 and await resp.read() == b"next"
    assert replica.connections == 2 and router_.services["echo"].pool.in_flight == 0


# On uvloop the test's own sock_sendall runs into the cut-off before its send loop stops (the router is right).
@pytest.mark.asyncio_only
async def test_a_pipelining_client_that_reads_nothing_holds_no_slot_and_is_cut_off(router_client, in_callbacks,
                                                                                    monkeypatch):
    """Small answers forwarded in callbacks pile up unread: the router starts no further pipelined request
    while the client's buffer is full, holds no replica slot meanwhile, and cuts the client off after the
    send timeout; requests it never started never reach the replica."""
    monkeypatch.setattr(router.http.server, "SWEEP_SECONDS", 0.05)
    replica = EchoReplica()
    url = await replica.start()
    try:
        client, router_ = await router_client({"services": {"echo": service_config([url])},
                                               "router": {"limits": {"sendTimeoutSeconds": 0.5,
                                                                     "responseBufferBytes": 64 * 1024}}})
        pool = router_.services["echo"].pool
        assert (await client.post(SCORE, data=b"warm")).status == 200
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect((client.host, client.port))
        body = b"x" * 60_000
        request = f"POST {SCORE} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
        try:
            sock.setblocking(False)
            loop = asyncio.get_running_loop()
            sent = 0
            for _ in range(300):  # bounded: the router stops reading once requests wait behind unread answers
                try:
                    await asyncio.wait_for(loop.sock_sendall(sock, request), 0.5)
                    sent += 1
                except asyncio.TimeoutError:
                    break
            assert await until(lambda: pool.in_flight == 0)
            (held,) = [c for c in client.server.connections if c._pending]  # requests wait behind unread answers
            assert await until(lambda: held._active is None, 5)
            reached = len(replica.bodies)
            assert 1 < reached < sent + 1  # answers went out until the buffers were full, then nothing started
            assert pool.in_flight == 0
            assert await until(lambda: held not in client.server.connections, 5)  # cut off after the send timeout
            await asyncio.sleep(0.2)
            assert len(replica.bodies) == reached and pool.in_flight == 0
        finally:
            sock.close()
        assert (await client.post(SCORE, data=b"after")).status == 200
        assert len(in_callbacks) >= 2
    finally:
        await replica.close()

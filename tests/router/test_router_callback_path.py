"""The request path in callbacks (`router/callback_forward.py`): a request that finds a free slot and an idle
kept-alive connection to its replica is forwarded and answered without a task; each test first warms that
connection with one request, so the request under test takes the callback path, and checks the rule
`proxy.forward` keeps for the same event (deadline, client leaving, split or large answers, endpoints)."""
import asyncio
import gc
import io
import json
import time

import pytest

from router_testkit import service_config, until

SCORE = "/api/v1/service/echo/score"
pytestmark = pytest.mark.asyncio


def capture_log(router_) -> io.StringIO:
    """The router's request log, written here instead of stderr."""
    router_.access_log._stream = io.StringIO()
    return router_.access_log._stream


def logged(router_) -> list[dict]:
    router_.access_log.flush()
    return [json.loads(line) for line in router_.access_log._stream.getvalue().splitlines()]


async def test_requests_on_a_kept_alive_replica_connection_are_forwarded_in_callbacks(models, router_client,
                                                                                     in_callbacks):
    (m,) = await models(1)
    client, router_ = await router_client({"services": {"echo": service_config([m.url])}})
    capture_log(router_)
    for i in range(5):
        resp = await client.post(SCORE, data=b"body-%d" % i, headers={"x-request-id": f"r{i}"})
        assert resp.status == 200 and await resp.read() == b"body-%d" % i
        assert resp.headers["x-request-id"] == f"r{i}"
    assert len(in_callbacks) == 4  # the first request opened the connection the other four used
    assert router_.metrics.registry.get_sample_value("router_requests_in_callbacks_total", {"service": "echo"}) == 4
    assert [r["headers"]["x-request-id"] for r in m.requests] == [f"r{i}" for i in range(5)]
    assert "authorization" not in m.requests[-1]["headers"]
    assert [(e["requestId"], e["status"]) for e in logged(router_)] == [(f"r{i}", 200) for i in range(5)]
    assert router_.services["echo"].pool.in_flight == 0


async def test_the_deadline_in_callbacks_is_504_and_the_slot_waits_for_the_replica(models, router_client,
                                                                                  in_callbacks):
    (m,) = await models(1)
    client, router_ = await router_client({"services": {"echo": service_config(
        [m.url], scoringTimeoutMs=300, replicaTimeoutMs=5000)}})
    capture_log(router_)
    pool = router_.services["echo"].pool
    assert (await client.get(SCORE)).status == 200
    started = time.monotonic()
    resp = await client.get(SCORE + "?sleep=1", headers={"x-request-id": "late"})
    assert resp.status == 504 and (await resp.text()) == "scoring timed out\n"
    assert time.monotonic() - started < 0.9
    assert len(in_callbacks) == 1
    assert pool.in_flight == 1  # the replica still computes: its slot is not handed to another request
    assert await until(lambda: pool.in_flight == 0)
    assert len(m.requests) == 2  # never sent again
    assert [e["status"] for e in logged(router_) if e["requestId"] == "late"] == [504]


async def test_a_client_leaving_in_callbacks_is_499_and_the_slot_waits_for_the_replica(models, router_client,
                                                                                      in_callbacks):
    (m,) = await models(1)
    client, router_ = await router_client({"services": {"echo": service_config([m.url])}})
    capture_log(router_)
    pool = router_.services["echo"].pool
    assert (await client.get(SCORE)).status == 200
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(f"GET {SCORE}?sleep=1 HTTP/1.1\r\nHost: x\r\nx-request-id: leaver\r\n\r\n".encode())
    await writer.drain()
    assert await until(lambda: m.in_flight == 1)
    writer.close()
    assert await until(lambda: bool(router_.access_log._lines))
    assert len(in_callbacks) == 1
    assert pool.in_flight == 1 and m.in_flight == 1
    assert await until(lambda: pool.in_flight == 0)
    assert [e["status"] for e in logged(router_) if e["requestId"] == "leaver"] == [499]
    assert (await client.get(SCORE)).status == 200  # the connection the replica answered on is usable


async def test_a_large_answer_started_in_callbacks_streams_whole(models, router_client, in_callbacks):
    (m,) = await models(1)
    client, router_ = await router_client({"services": {"echo": service_config([m.url])}})
    assert (await client.get(SCORE)).status == 200
    resp = await client.get(SCORE + "?big=3000000")
    assert resp.status == 200 and len(await resp.read()) == 3_000_000
    assert len(in_callbacks) == 1
    assert router_.services["echo"].pool.in_flight == 0


async def test_a_small_answer_split_over_reads_is_relayed_whole(router_client, in_callbacks):
    """The replica sends the head and part of a small body, then the rest later: the request leaves the
    callbacks for `proxy.relay`, which waits for the rest under the read timeout."""
    async def serve(reader, writer):
        try:
            for _ in range(10):  # bounded
                head = await reader.readuntil(b"\r\n\r\n")
                assert head.startswith(b"GET ")
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123")
                await writer.drain()
                await asyncio.sleep(0.2)
                writer.write(b"456789")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        client, router_ = await router_client({"services": {"echo": service_config([url])}})
        for _ in range(3):
            resp = await client.get(SCORE)
            assert resp.status == 200 and await resp.read() == b"0123456789"
        assert len(in_callbacks) == 2
        assert router_.services["echo"].pool.in_flight == 0
    finally:
        server.close()
        await server.wait_closed()


async def test_an_endpoint_version_answered_in_callbacks_names_the_version(models, router_client, in_callbacks):
    (m,) = await models(1)
    client, router_ = await router_client({
        "services": {"echo": service_config([m.url])},
        "endpoints": {"echo-ab": {"auth": {"mode": "none"}, "versions": {"blue": {"service": "echo", "trafficPercentile": 100}}}}})
    capture_log(router_)
    for _ in range(2):
        resp = await client.post("/api/v1/endpoint/echo-ab/score", data=b"x")
        assert resp.status == 200 and resp.headers["azureml-model-deployment"] == "blue"
    assert len(in_callbacks) == 1
    assert [e["version"] for e in logged(router_)] == ["blue", "blue"]


async def test_requests_in_callbacks_leave_no_reference_cycle(models, router_client, in_callbacks):
    """Garbage in a cycle waits for the cyclic collector, whose passes then cost every request: the callback
    path must leave its objects to reference counting (an exchange and its listener once held each other)."""
    (m,) = await models(1)
    client, _ = await router_client({"services": {"echo": service_config([m.url])}})
    assert (await client.get(SCORE)).status == 200
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        for _ in range(50):
            assert (await client.post(SCORE, data=b"x")).status == 200
        gc.collect()
        cyclic = {type(o).__name__ for o in gc.garbage}
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert len(in_callbacks) == 50
    assert not cyclic & {"CallbackForward", "Exchange", "Call", "Request", "Response"}


class FailsOnce:
    """A client transport whose first write raises: stands in for a bug in the router's own code on the way
    out (the compiled request path cannot be patched to fail)."""

    def __init__(self, transport) -> None:
        self._transport = transport
        self.failures = [RuntimeError("a bug")]

    def write(self, data: bytes) -> None:
        if self.failures:
            raise self.failures.pop()
        self._transport.write(data)

    def __getattr__(self, name: str):
        return getattr(self._transport, name)


async def test_a_failure_of_the_router_in_callbacks_is_logged_and_cut_off_not_a_hang(models, router_client,
                                                                                      in_callbacks, caplog):
    (m,) = await models(1)
    client, router_ = await router_client({"services": {"echo": service_config([m.url])}})
    reader, writer = await asyncio.open_connection(client.host, client.port)
    request = f"GET {SCORE} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    writer.write(request)
    assert (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)).startswith(b"HTTP/1.1 200 ")
    await reader.readexactly(2)  # the model's "ok"
    (conn,) = client.server.connections  # the scoring server's side of that kept-alive connection
    conn.transport = failing = FailsOnce(conn.transport)
    writer.write(request)
    # The failure came after the status line was made: the answer is cut off (nothing of it was written).
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()
    assert not failing.failures
    assert "answering a scoring request in callbacks failed" in caplog.text and "a bug" in caplog.text
    assert router_.services["echo"].pool.in_flight == 0
    assert (await client.get(SCORE)).status == 200
    assert len(in_callbacks) == 2  # the failed request and the one after it: the replica connection was kept

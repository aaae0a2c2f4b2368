"""The router's upstream HTTP/1.1 client against replicas speaking raw HTTP on 127.0.0.1: keep-alive,
`Connection: close` (as the Azure ML inference server answers), bodies ended by closing, interim 1xx
answers, base URLs with a path, and bodies passed through byte for byte."""
import asyncio
import gzip
import json

import pytest
import pytest_asyncio

from router.accesslog import request_line
from router_testkit import RawServer, service_config, until

SCORE = "/api/v1/service/echo/score"
pytestmark = pytest.mark.asyncio


class RawReplica(RawServer):
    """Answers every request with `answer` (bytes, or a function of the request head); counts connections.

    `close_after`: close each connection after its first answer. `close_when_reused`: keep it open, but
    when a second request comes on it, read that request and close without answering, which is what the
    router sees when a replica closes an idle kept-alive connection just as a request is written on it.
    """

    def __init__(self, answer, close_after: bool = False, close_when_reused: bool = False) -> None:
        self.answer = answer
        self.close_after = close_after
        self.close_when_reused = close_when_reused
        self.connections = 0
        self.heads: list[bytes] = []
        self.bodies: list[bytes] = []

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            for served in range(1000):  # bounded: one connection never carries more in these tests
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                self.heads.append(head)
                self.bodies.append(await reader.readexactly(length))
                if served and self.close_when_reused:
                    break
                writer.write(self.answer(head) if callable(self.answer) else self.answer)
                await writer.drain()
                if self.close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest_asyncio.fixture
async def raw_replicas():
    started: list[RawReplica] = []

    async def start(answer, close_after: bool = False, close_when_reused: bool = False) -> tuple[RawReplica, str]:
        replica = RawReplica(answer, close_after, close_when_reused)
        started.append(replica)
        return replica, await replica.start()

    yield start
    for replica in started:
        await replica.close()


async def test_connections_are_kept_alive_and_reused(raw_replicas, router_client):
    replica, url = await raw_replicas(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    client, _ = await router_client({"services": {"echo": service_config([url])}})
    for _ in range(5):
        resp = await client.post(SCORE, data=b"x")
        assert resp.status == 200 and await resp.read() == b"ok"
    assert replica.connections == 1
    assert all(b"\r\nHost: 127.0.0.1:" in head for head in replica.heads)


async def test_a_replica_that_closes_every_connection_gets_a_new_one_each_time(raw_replicas, router_client):
    answer = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"
    replica, url = await raw_replicas(answer, close_after=True)
    client, router = await router_client({"services": {"echo": service_config([url])}})
    for _ in range(5):
        resp = await client.post(SCORE, data=b"x")
        assert resp.status == 200 and await resp.read() == b"ok"
    assert replica.connections == 5
    assert router.services["echo"].pool.in_flight == 0


async def test_a_request_the_replica_read_and_closed_on_is_502_and_never_sent_again(raw_replicas, router_client):
    """The replica reads a request on a kept-alive connection and closes it without answering. It may
    have acted on the request, so the router does not send it again: 502, and each body arrived once."""
    replica, url = await raw_replicas(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", close_when_reused=True)
    client, router = await router_client({"services": {"echo": service_config([url])}})
    statuses = []
    for i in range(4):
        resp = await client.post(SCORE, data=b"body-%d" % i)
        statuses.append(resp.status)
    # Request 0 opened a connection; request 1 went on it and was lost; 2 opened a new one; 3 was lost.
    assert statuses == [200, 502, 200, 502]
    assert replica.bodies == [b"body-0", b"body-1", b"body-2", b"body-3"]
    pool = router.services["echo"].pool
    assert pool.in_flight == 0 and not pool.replicas[url].ejected  # the replica is fine: no ejection
    assert router.metrics.registry.get_sample_value("router_retries_total", {"service": "echo"}) in (None, 0.0)


async def test_a_connection_reset_before_the_write_is_known_unsent():
    """The one failure after which a request may go again: the write itself failed because the replica
    had reset the idle connection (checked here on the upstream client alone, as no router could be
    made to pick such a connection deterministically: the reset is seen before the request's turn)."""
    import socket
    import struct
    import time

    from router.http.upstream import UpstreamClient, UpstreamError

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    client = UpstreamClient()
    try:
        connections = client.connections(f"http://127.0.0.1:{listener.getsockname()[1]}")
        conn = await connections.get(5)
        accepted, _ = listener.accept()
        accepted.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        accepted.close()  # a reset, not a FIN
        time.sleep(0.05)  # the reset arrives; the event loop has not looked yet
        exchange = conn.start(b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx", 5)
        assert exchange.unsent
        with pytest.raises(UpstreamError):
            await asyncio.wait_for(exchange.response, 5)
        # A request written on a healthy connection is not `unsent`, whatever happens to it later.
        conn = await connections.get(5, fresh=True)
        accepted, _ = listener.accept()
        assert not conn.start(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 5).unsent
        accepted.close()
    finally:
        client.close()
        listener.close()


async def test_the_idle_sweep_keeps_a_replica_whose_connections_are_all_lent_out(monkeypatch):
    """At the sweep every connection of a busy replica may be lent out, none idle: the replica is still in
    use, so its connections, once back, are reused rather than left in a forgotten set (each request after
    would open a new connection)."""
    import router.http.upstream
    from router.http.upstream import UpstreamClient

    monkeypatch.setattr(router.http.upstream, "IDLE_SECONDS", 0.1)
    replica = RawReplica(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    url = await replica.start()
    client = UpstreamClient()
    try:
        connections = client.connections(url)
        busy = await connections.get(5)
        spare = await connections.get(5, fresh=True)
        connections.put(spare)  # idle: the sweep closes it, and finds `busy` lent out
        assert await until(lambda: spare.closed, 3)
        await asyncio.sleep(0.05)
        assert client.connections(url) is connections
        connections.put(busy)
        assert connections.idle() is busy
        # With nothing lent out and nothing idle, the sweep forgets the replica (e.g. gone from the backend).
        connections.put(busy)
        assert await until(lambda: busy.closed, 3)
        assert await until(lambda: client.connections(url) is not connections, 3)
    finally:
        client.close()
        await replica.close()


async def test_a_streamed_body_is_not_replayed_when_a_kept_alive_connection_fails(raw_replicas, router_client):
    """A body larger than one chunk streams from the client as it is sent: once part of it went out it
    cannot be sent again, so a failed kept-alive connection is still a 502."""
    replica, url = await raw_replicas(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", close_when_reused=True)
    client, router = await router_client({"services": {"echo": service_config([url])}})
    assert (await client.post(SCORE, data=b"x")).status == 200
    big = b"b" * 300_000
    assert (await client.post(SCORE, data=big)).status == 502
    assert replica.bodies == [b"x", big] and replica.connections == 1  # sent once, not replayed
    assert router.services["echo"].pool.in_flight == 0


async def test_a_body_ended_by_closing_the_connection_is_passed_on_whole(raw_replicas, router_client):
    body = b"y" * 200_000
    replica, url = await raw_replicas(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n" + body,
                                      close_after=True)
    client, _ = await router_client({"services": {"echo": service_config([url])}})
    resp = await client.get(SCORE)
    assert resp.status == 200 and await resp.read() == body
    assert resp.headers["Content-Type"] == "text/plain"


async def test_an_interim_100_answer_is_skipped(raw_replicas, router_client):
    _, url = await raw_replicas(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 1\r\n\r\nz")
    client, _ = await router_client({"services": {"echo": service_config([url])}})
    resp = await client.post(SCORE, data=b"x")
    assert resp.status == 201 and await resp.read() == b"z"


async def test_a_base_url_with_a_path_keeps_it_and_the_raw_query(raw_replicas, router_client):
    replica, url = await raw_replicas(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    client, _ = await router_client({"services": {"echo": service_config([url + "/models/a/"])}})
    assert (await client.get(SCORE + "?q=%20a&b=1")).status == 200
    assert replica.heads[-1].startswith(b"GET /models/a/score?q=%20a&b=1 HTTP/1.1\r\n")


async def test_a_gzip_body_reaches_the_replica_as_sent(raw_replicas, router_client):
    replica, url = await raw_replicas(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    client, _ = await router_client({"services": {"echo": service_config([url])}})
    sent = gzip.compress(b'{"data": [1, 2, 3]}' * 50)
    resp = await client.post(SCORE, data=sent, headers={"Content-Encoding": "gzip"})
    assert resp.status == 200
    assert replica.bodies[-1] == sent
    assert b"\r\nContent-Length: %d\r\n" % len(sent) in replica.heads[-1]
    assert b"\r\nContent-Encoding: gzip\r\n" in replica.heads[-1]


async def test_garbage_from_a_replica_is_502_and_the_slot_is_freed(raw_replicas, router_client):
    _, url = await raw_replicas(b"this is not http\r\n\r\n")
    client, router = await router_client({"services": {"echo": service_config([url])}})
    assert (await client.post(SCORE, data=b"x")).status == 502
    assert router.services["echo"].pool.in_flight == 0


async def test_the_request_log_line_is_json_whatever_the_path():
    path = '/api/v1/service/echo/score"}, {"status": 200, "x": "\u00e9\n'
    line = request_line(1.5, "abc", "echo", None, "POST", path, 200, "http://127.0.0.1:1", 1, 0.123, 4.5, 6.789)
    record = json.loads(line)
    assert "\n" not in line and record["path"] == path
    assert record == {"time": 1.5, "requestId": "abc", "service": "echo", "version": None, "method": "POST",
                      "path": path, "status": 200, "replica": "http://127.0.0.1:1", "retries": 1,
                      "queueMs": 0.12, "upstreamMs": 4.5, "totalMs": 6.79}


async def test_the_request_log_line_rounds_times_as_printf_would():
    """Times are written from whole units and a looked-up fraction, not float formatting: the same digits
    as `%.3f` / `%.2f` (one unit off at most on an exact tie), never negative."""
    import random
    rng = random.Random(17)
    values = [0.0, 0.004, 0.005, 0.994999, 0.995, 1.0, 99.999, 12345.678] + [rng.uniform(0, 1e5) for _ in range(5000)]
    for value in values:
        line = request_line(1.7e9 + value, "id", "s", None, "POST", "/", 200, None, 0, value, value, value)
        record = json.loads(line)
        written_time, written_ms = line.split('"time":')[1].split(",")[0], line.split('"queueMs":')[1].split(",")[0]
        assert len(written_time.split(".")[1]) == 3 and len(written_ms.split(".")[1]) == 2
        assert abs(int(written_time.replace(".", "")) - int(("%.3f" % (1.7e9 + value)).replace(".", ""))) <= 1
        assert abs(int(written_ms.replace(".", "")) - int(("%.2f" % value).replace(".", ""))) <= 1
        assert record["queueMs"] == record["upstreamMs"] == record["totalMs"]
    exact = json.loads(request_line(1.5, "id", "s", None, "GET", "/", 200, None, 0, 2.25, 0.126, 7.0))
    assert (exact["time"], exact["queueMs"], exact["upstreamMs"], exact["totalMs"]) == (1.5, 2.25, 0.13, 7.0)
    backwards = request_line(-0.2, "id", "s", None, "GET", "/", 200, None, 0, -0.004, -3.0, 0.0)
    assert '"time":0.000,' in backwards and '"queueMs":0.00,' in backwards and '"upstreamMs":0.00,' in backwards


async def test_made_request_ids_are_32_hex_digits_and_unique():
    from router.scoring import RequestIds
    ids = RequestIds()
    made = [ids.next() for _ in range(2000)]  # past several of the 256-id steps where the high digits change
    assert len(set(made)) == len(made)
    assert all(len(i) == 32 and int(i, 16) >= 0 and i == i.lower() for i in made)
    assert len({i[:16] for i in made}) == 1  # one process, one random prefix
    assert [int(i[16:], 16) for i in made] == list(range(2000))
    assert RequestIds().next()[:16] != made[0][:16]

async def test_the_request_log_line_is_valid_json_for_any_number():
    """NaN, infinities and values too large to scale are written as numbers JSON parses (never `nan` or
    `inf`, never an exception out of the request's answer path)."""
    def no_constants(name):
        raise ValueError(f"not JSON: {name}")
    for value in (float("nan"), float("inf"), -float("inf"), 1e307, 1.7e308, -1e308, 0.0):
        line = request_line(value, "id", "s", None, "GET", "/", 200, None, 0, value, value, value)
        record = json.loads(line, parse_constant=no_constants)
        assert all(record[k] >= 0 for k in ("time", "queueMs", "upstreamMs", "totalMs"))

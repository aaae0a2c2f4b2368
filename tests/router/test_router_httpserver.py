"""The scoring port's HTTP/1.1 server (router/http/server.py) on 127.0.0.1, spoken to byte by byte:
pipelining, HTTP/1.0, bad and oversized heads, flow control of request bodies, idle connections, and a
client that leaves while its request is at a replica."""
import asyncio
import json

import pytest
import pytest_asyncio

from router.http.readflow import HIGH_WATER
from router.http.server import HttpServer
from router.settings import HttpLimits
from router_testkit import service_config

pytestmark = pytest.mark.asyncio
SCORE = "/api/v1/service/echo/score"


class Handler:
    """/stream answers in pieces without a length; /hold waits for `release` before reading the body;
    anything else echoes the body, naming the path."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.held = []

    async def __call__(self, request, response) -> None:
        if request.path == "/stream":
            response.start(200, [(b"x-kind", b"stream")])
            for piece in (b"ab", b"cd"):
                response.write(piece)
                await response.drain()
            response.end()
            return
        if request.path == "/hold":
            self.held.append(request)
            await self.release.wait()
        body = await request.read()
        response.send(200, [(b"x-path", request.path.encode())], body)


@pytest_asyncio.fixture
async def server():
    handler = Handler()
    http = HttpServer(handler)
    await http.listen("127.0.0.1", 0)
    yield http, handler
    handler.release.set()
    await http.shutdown(1)


async def talk(port: int, data: bytes) -> bytes:
    """Send `data`, then read until the server closes the connection (bounded)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    return answer


async def test_pipelined_requests_are_answered_in_order(server):
    http, _ = server
    answer = await talk(http.port, b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\none"
                                   b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n"
                                   b"POST /c HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                                   b"Connection: close\r\n\r\nthree")
    assert answer.count(b"HTTP/1.1 200 OK\r\n") == 3
    first, second, third = answer.index(b"x-path: /a"), answer.index(b"x-path: /b"), answer.index(b"x-path: /c")
    assert first < second < third
    assert answer.endswith(b"three") and b"\r\n\r\none" in answer
    assert b"Connection: close" in answer[third:]  # the last one asked to close, and the server did


async def test_http_1_0_closes_unless_asked_to_keep_alive_and_gets_no_chunks(server):
    http, _ = server
    answer = await talk(http.port, b"GET /a HTTP/1.0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and b"Connection: close" in answer
    answer = await talk(http.port, b"GET /stream HTTP/1.0\r\n\r\n")
    assert b"Transfer-Encoding" not in answer and answer.endswith(b"\r\n\r\nabcd")  # ended by closing
    reader, writer = await asyncio.open_connection("127.0.0.1", http.port)
    for _ in range(2):
        writer.write(b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert b"Connection: keep-alive" in head and b"Content-Length: 0" in head
    writer.close()


async def test_a_streamed_answer_to_http_1_1_is_chunked(server):
    http, _ = server
    answer = await talk(http.port, b"GET /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert b"Transfer-Encoding: chunked" in answer and answer.endswith(b"2\r\nab\r\n2\r\ncd\r\n0\r\n\r\n")


async def test_a_malformed_request_is_400_and_an_oversized_head_431(server, monkeypatch):
    http, _ = server
    assert (await talk(http.port, b"NOT HTTP AT ALL\r\n\r\n")).startswith(b"HTTP/1.1 400 ")
    both = b"POST /a HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"  # smuggling shape
    assert (await talk(http.port, both)).startswith(b"HTTP/1.1 400 ")
    huge = b"GET /a HTTP/1.1\r\nX-Big: " + b"a" * (HttpLimits().max_header_bytes + 1) + b"\r\n\r\n"
    assert (await talk(http.port, huge)).startswith(b"HTTP/1.1 431 ")


async def test_an_unread_body_is_held_back_at_the_socket_not_buffered_whole(server):
    """While the handler does not read, the client's socket is paused once HIGH_WATER bytes wait."""
    http, handler = server
    total = 8 * 1024 * 1024
    reader, writer = await asyncio.open_connection("127.0.0.1", http.port)
    writer.write(b"POST /hold HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % total)
    sent = 0
    try:
        for _ in range(total // 65536):  # bounded; stops when the server's and kernel's buffers are full
            writer.write(b"z" * 65536)
            await asyncio.wait_for(writer.drain(), 0.5)
            sent += 65536
    except asyncio.TimeoutError:
        pass
    assert sent < total  # the client was made to wait
    (request,) = handler.held
    assert request._buffered <= HIGH_WATER + 1024 * 1024  # at most the threshold plus one socket read
    handler.release.set()
    rest = total - sent - 65536

    async def send_rest():
        writer.write(b"z" * rest)
        await writer.drain()
    await asyncio.wait_for(asyncio.gather(send_rest(), reader.readuntil(b"\r\n\r\n")), 30)
    writer.close()


async def test_idle_connections_are_closed(server):
    http, _ = server
    reader, writer = await asyncio.open_connection("127.0.0.1", http.port)
    writer.write(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
    await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    http.limits = HttpLimits(keepAliveSeconds=0.001)
    for conn in http.connections:
        conn._limits = http.limits
    await asyncio.sleep(0.01)
    http.sweep()  # the periodic sweep, run now
    assert await asyncio.wait_for(reader.read(), 10) == b""  # closed by the server
    writer.close()


async def test_wrong_method_is_405_and_head_of_root_has_no_body(models, router_client):
    (m,) = await models(1)
    client, _ = await router_client({"services": {"echo": service_config([m.url])}})
    resp = await client.request("PUT", SCORE, data=b"x")
    assert resp.status == 405 and resp.headers["Allow"] == "GET, POST"
    resp = await client.request("HEAD", "/")
    assert resp.status == 200 and resp.headers["Content-Length"] == "7" and await resp.read() == b""
    assert m.requests == []


async def test_413_reaches_a_client_still_sending_its_body(models, router_client):
    """The router refuses from Content-Length, closes its side and discards the rest for a while, so the
    client reads the 413 instead of a connection reset."""
    (m,) = await models(1)
    client, _ = await router_client({"services": {"echo": service_config([m.url], maxBodyBytes=1000)}})
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(f"POST {SCORE} HTTP/1.1\r\nHost: x\r\nContent-Length: 3000000\r\n\r\n".encode())
    for _ in range(20):  # the client keeps sending after the router has answered
        writer.write(b"q" * 65536)
        try:
            await asyncio.wait_for(writer.drain(), 0.5)
        except (asyncio.TimeoutError, ConnectionError):
            break
    answer = await asyncio.wait_for(reader.read(), 10)
    assert answer.startswith(b"HTTP/1.1 413 ") and b"Connection: close" in answer
    writer.close()
    assert m.received_bytes == 0


async def test_a_client_that_leaves_keeps_the_slot_until_the_replica_answers(models, router_client, capsys):
    (m,) = await models(1)
    client, router = await router_client({"services": {"echo": service_config([m.url], maxConcurrentPerReplica=1)}})
    pool = router.services["echo"].pool
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(f"GET {SCORE}?sleep=3 HTTP/1.1\r\nHost: x\r\nx-request-id: leaver\r\n\r\n".encode())
    await writer.drain()
    for _ in range(200):
        if m.in_flight:
            break
        await asyncio.sleep(0.01)
    writer.close()  # the client leaves while the replica computes
    for _ in range(100):  # bounded: the router notices the close
        await asyncio.sleep(0.01)
        if router.access_log._lines:
            break
    assert m.in_flight == 1 and pool.in_flight == 1  # the replica is still busy: its slot stays taken
    for _ in range(1000):  # bounded: the replica answers after 3 s
        if pool.in_flight == 0:
            break
        await asyncio.sleep(0.01)
    assert pool.in_flight == 0
    router.access_log.flush()
    logged = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    assert [entry["status"] for entry in logged if entry["requestId"] == "leaver"] == [499]
    assert (await client.get(SCORE)).status == 200


async def test_an_absolute_form_target_is_routed_by_its_path(server):
    http, _ = server
    answer = await talk(http.port, b"GET http://example.test/a?x=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and b"x-path: /a\r\n" in answer


async def test_a_broken_chunked_body_is_400(models, router_client):
    (m,) = await models(1)
    client, router = await router_client({"services": {"echo": service_config([m.url])}})
    answer = await talk(client.port, f"POST {SCORE} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                                     "5\r\nhello\r\nnot-hex\r\n".encode())
    assert answer.startswith(b"HTTP/1.1 400 ") and b"Connection: close" in answer
    assert router.services["echo"].pool.in_flight == 0
    assert m.requests == []  # broken before its turn: no replica saw its head

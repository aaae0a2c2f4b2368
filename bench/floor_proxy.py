"""Reference: the least a proxy on the router's own stack can do per request (uvloop, httptools, asyncio
protocols), to show what the stack costs apart from the router's features.

One kept-alive upstream connection per client connection, callbacks only (no task, future or timer), and
nothing else: no routing, auth, slots, queue, deadline, retries, request id, log or metrics. It relays a
GET and its answer (the benchmark sends nothing else), which is all it is measured on. With `--task` each
request runs in a task that awaits a future for the upstream answer, as the router's handlers do, which
shows what that structure costs by itself.

python bench/floor_proxy.py PORT UPSTREAM_PORT [--task]
"""
import asyncio
import sys

import httptools
import uvloop

REQUEST = b"GET /score HTTP/1.1\r\nHost: model\r\n\r\n"
TASK = "--task" in sys.argv


class Upstream(asyncio.Protocol):
    def __init__(self, client: "Client") -> None:
        self.client = client
        self.parser = httptools.HttpResponseParser(self)
        self.body: list[bytes] = []
        self.answered: asyncio.Future | None = None  # with --task: the handler awaits the answer here

    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_message_begin(self) -> None:
        self.body = []

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        body = b"".join(self.body)
        if self.answered is not None:
            self.answered.set_result(body)
        else:
            self.client.answer(self.parser.get_status_code(), body)


class Client(asyncio.Protocol):
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.parser = httptools.HttpRequestParser(self)
        self.upstream: Upstream | None = None
        self.waiting = 0  # requests that arrived before the upstream connection was up

    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        _, self.upstream = await asyncio.get_running_loop().create_connection(
            lambda: Upstream(self), "127.0.0.1", self.upstream_port)
        self.upstream.transport.write(REQUEST * self.waiting)

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_message_complete(self) -> None:
        if TASK and self.upstream is not None:
            asyncio.get_running_loop().create_task(self._relay())
        elif self.upstream is None:
            self.waiting += 1
        else:
            self.upstream.transport.write(REQUEST)

    async def _relay(self) -> None:
        upstream = self.upstream
        upstream.answered = asyncio.get_running_loop().create_future()
        upstream.transport.write(REQUEST)
        body = await upstream.answered
        upstream.answered = None
        self.answer(upstream.parser.get_status_code(), body)

    def answer(self, status: int, body: bytes) -> None:
        if not self.transport.is_closing():
            self.transport.write(b"HTTP/1.1 %d OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                                 % (status, len(body), body))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.upstream is not None:
            self.upstream.transport.close()


async def main() -> None:
    port, upstream_port = int(sys.argv[1]), int(sys.argv[2])
    server = await asyncio.get_running_loop().create_server(lambda: Client(upstream_port), "127.0.0.1", port,
                                                            backlog=1024)
    await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(main())

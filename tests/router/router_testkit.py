"""Helpers for the router tests: the issue's example config and real aiohttp model replicas on 127.0.0.1."""
from __future__ import annotations

import asyncio
import datetime as dt
import json
import socket
import ssl
from pathlib import Path

import aiohttp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from aiohttp import web
from aiohttp.test_utils import TestServer

# The example config; tests build on it unchanged except for URLs and key paths.
EXAMPLE = {"services": {"echo": {
    "auth": {"mode": "key", "keyFiles": ["/tmp/k/primary", "/tmp/k/secondary"]},
    "backend": {"kind": "static", "urls": ["http://127.0.0.1:9001", "http://127.0.0.1:9002"]},
    "requests": {"maxConcurrentPerReplica": 64, "maxQueueWaitMs": 500, "scoringTimeoutMs": 60000},
    "autoscale": {"enabled": False}}},
    "endpoints": {}}

PRIMARY, SECONDARY = "primary-key-0123456789", "secondary-key-9876543210"


class Model:
    """A stand-in model replica speaking the inference server's HTTP contract (`/`, `/score`, `/swagger.json`).

    /score echoes the body; query `sleep=<s>` delays the answer, `big=<n>` streams n bytes back,
    `crash=1` drops the connection after reading the request, `cut=1` (with big) half way through the answer.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.requests: list[dict] = []
        self.in_flight = 0
        self.peak = 0
        self.server: TestServer | None = None
        self.received_bytes = 0
        self._transports: set = set()

    def app(self) -> web.Application:
        app = web.Application(client_max_size=1024 ** 3)
        app.router.add_get("/", self.healthy)
        app.router.add_route("*", "/score", self.score)
        app.router.add_get("/swagger.json", self.swagger)
        return app

    async def healthy(self, request: web.Request) -> web.Response:
        return web.Response(text="Healthy")

    async def swagger(self, request: web.Request) -> web.Response:
        return web.json_response({"swagger": "2.0", "model": self.name})

    async def score(self, request: web.Request) -> web.StreamResponse:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            self._transports.add(request.transport)
            self.requests.append({"headers": {k.lower(): v for k, v in request.headers.items()},
                                  "query": dict(request.query)})
            body = b""
            async for chunk in request.content.iter_chunked(1 << 16):
                self.received_bytes += len(chunk)
                body += chunk
            if "sleep" in request.query:
                await asyncio.sleep(float(request.query["sleep"]))
            if "crash" in request.query:
                request.transport.close()
                raise asyncio.CancelledError()
            headers = {"x-replica": self.name, "x-seen-request-id": request.headers.get("x-request-id", "")}
            if "big" in request.query:
                response = web.StreamResponse(headers=headers)
                await response.prepare(request)
                remaining = int(request.query["big"])
                while remaining:
                    if "cut" in request.query and remaining < int(request.query["big"]) // 2:
                        request.transport.abort()  # die half way through the answer
                        raise asyncio.CancelledError()
                    n = min(remaining, 1 << 16)
                    await response.write(b"x" * n)
                    remaining -= n
                await response.write_eof()
                return response
            return web.Response(body=body or b"ok", headers=headers)
        finally:
            self.in_flight -= 1
            self._transports.discard(request.transport)

    async def kill(self) -> None:
        """Die like a crashed process: drop the connections of requests in progress, stop listening."""
        for transport in list(self._transports):
            transport.abort()
        await self.server.close()

    @property
    def url(self) -> str:
        return str(self.server.make_url("")).rstrip("/")


def service_config(urls: list[str], key_files: list[Path] | None = None, **requests) -> dict:
    config = json.loads(json.dumps(EXAMPLE["services"]["echo"]))
    config["backend"]["urls"] = urls
    if key_files is None:
        config["auth"] = {"mode": "none"}
    else:
        config["auth"]["keyFiles"] = [str(p) for p in key_files]
    config["requests"].update(requests)
    return config


class RouterClient:
    """An aiohttp client of the router's scoring port: `get`/`post`/`request` take a path, as aiohttp's
    TestClient does (the scoring port is not an aiohttp app, so TestClient does not apply)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.session = aiohttp.ClientSession(f"http://{host}:{port}")

    def request(self, method: str, path: str, **kwargs):
        return self.session.request(method, path, **kwargs)

    def get(self, path: str, **kwargs):
        return self.session.get(path, **kwargs)

    def post(self, path: str, **kwargs):
        return self.session.post(path, **kwargs)

    async def close(self) -> None:
        await self.session.close()


def self_signed(name: str) -> tuple[bytes, bytes]:
    """(certificate PEM, key PEM) for `name`, valid for a day."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


async def served_common_name(port: int) -> str:
    """The CN of the certificate the server on 127.0.0.1:port presents."""
    client = ssl.create_default_context()
    client.check_hostname, client.verify_mode = False, ssl.CERT_NONE  # we read the certificate, not trust it
    _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port, ssl=client), 5)
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    writer.close()
    cert = x509.load_der_x509_certificate(der)
    return cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def until(condition, seconds: float = 10.0) -> bool:
    """Wait (bounded) for a condition the router reaches asynchronously."""
    for _ in range(int(seconds / 0.02)):
        if condition():
            return True
        await asyncio.sleep(0.02)
    return condition()


class RawServer:
    """A replica speaking raw HTTP on 127.0.0.1 (subclasses write `_serve`); `start` gives its URL."""

    server: asyncio.AbstractServer | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        self.server.close()
        await self.server.wait_closed()

"""TLS from ACME (cert-manager, HTTP-01): the router starts without a certificate, forwards the challenge to
the solver pod, redirects everything else to HTTPS, and serves the certificate once it is written.

No Kubernetes API server and no cert-manager solver can run here: kube_standin stands in for the API
server, and `solver_standin` for cert-manager's acmesolver (same contract: it answers its one token, for
its one domain, with the key authorization, and 404 otherwise).
"""
import asyncio
import json
import ssl
import sys
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer

from kube_standin import ROUTER_API_CALLS, TOKEN, endpoint
from router.acme import AcmeResponder
from router.backends.kubeapi import KubeApi
from router.http.server import HttpServer
from router.settings import AcmeOptions
from router_testkit import free_port, self_signed, served_common_name, service_config, until

pytestmark = pytest.mark.asyncio
REPO = Path(__file__).resolve().parents[2]
DOMAIN = "scoring.westeurope.cloudapp.azure.com"
CHALLENGE = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA"
KEY_AUTHORIZATION = CHALLENGE + ".9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI"
SOLVER_LABELS = {"acme.cert-manager.io/http01-solver": "true"}




def solver_standin(domain: str, token: str, key: str) -> web.Application:
    async def answer(request: web.Request) -> web.Response:
        if request.host.split(":")[0] != domain or request.match_info["token"] != token:
            return web.Response(status=404)
        return web.Response(text=key)
    app = web.Application()
    app.router.add_get("/.well-known/acme-challenge/{token}", answer)
    return app


def solver_slice(name: str, port: int, ready: bool = True) -> dict:
    # The EndpointSlice controller copies the solver Service's labels onto its slices.
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
            "metadata": {"name": name, "labels": {**SOLVER_LABELS, "kubernetes.io/service-name": name}},
            "ports": [{"name": "http", "port": port, "protocol": "TCP"}], "endpoints": [endpoint("127.0.0.1", ready)]}




@pytest_asyncio.fixture
async def solver():
    server = TestServer(solver_standin(DOMAIN, CHALLENGE, KEY_AUTHORIZATION), host="127.0.0.1")
    await server.start_server()
    yield server
    await server.close()


async def get(session: aiohttp.ClientSession, url: str, host: str = DOMAIN, method: str = "GET", **kw):
    async with session.request(method, url, headers={"Host": host}, allow_redirects=False, **kw) as resp:
        return resp.status, await resp.text(), resp.headers.get("Location")


async def handshake_fails(port: int) -> bool:
    try:
        await served_common_name(port)
    except (ssl.SSLError, ConnectionError):
        return True
    return False


async def test_router_serves_the_challenge_then_the_certificate_it_brings(standin, solver, models, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    (m,) = await models(1)
    cert, key = tmp_path / "tls" / "tls.crt", tmp_path / "tls" / "tls.key"  # not there yet: ACME brings them
    port, admin, https, plain = free_port(), free_port(), free_port(), free_port()
    config = {"services": {"echo": service_config([m.url])},
              "router": {"cluster": {"namespace": "router-ns", "apiServer": str(standin.server.make_url("")).rstrip("/"),
                                     "tokenFile": str(token_file), "caFile": None},
                         "tls": {"certFile": str(cert), "keyFile": str(key), "port": https},
                         "acme": {"port": plain}}}
    path = tmp_path / "router.json"
    path.write_text(json.dumps(config))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "router", "serve", "--config", str(path), "--port", str(port),
        "--admin-port", str(admin), cwd=REPO, stderr=asyncio.subprocess.PIPE)
    base = f"http://127.0.0.1:{plain}"
    challenge = f"{base}/.well-known/acme-challenge/{CHALLENGE}"
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(200):  # bounded wait for the process to be ready
                try:
                    async with session.get(f"http://127.0.0.1:{admin}/readyz") as resp:
                        if resp.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.05)
            # Ready without a certificate: the challenge that brings one has to be answered first.
            assert await handshake_fails(https)
            assert (await get(session, challenge))[0] == 404  # no solver pod yet

            # cert-manager starts the solver pod; the router finds it through its Service's EndpointSlice.
            standin.put("endpointslices", "router-ns", solver_slice("cm-acme-http-solver-x1", solver.port))
            for _ in range(200):
                status, body, _ = await get(session, challenge)
                if status == 200:
                    break
                await asyncio.sleep(0.05)
            assert (status, body) == (200, KEY_AUTHORIZATION)
            # The solver, not the router, decides: another token or another name is not answered.
            assert (await get(session, f"{base}/.well-known/acme-challenge/other-token"))[0] == 404
            assert (await get(session, challenge, host="elsewhere.example"))[0] == 404

            # Anything else on the plain port goes to HTTPS, method and body kept (308).
            status, _, location = await get(session, f"{base}/api/v1/service/echo/score?x=1", method="POST",
                                            data=b'{"data": [1]}')
            assert (status, location) == (308, f"https://{DOMAIN}/api/v1/service/echo/score?x=1")

            # cert-manager writes the Secret; the kubelet puts the files in place; HTTPS starts working.
            cert.parent.mkdir()
            cert_pem, key_pem = self_signed(DOMAIN)
            key.write_bytes(key_pem)
            cert.write_bytes(cert_pem)
            for _ in range(100):  # bounded: the router looks for the files every 3 s while it has none
                if not await handshake_fails(https):
                    break
                await asyncio.sleep(0.1)
            assert await served_common_name(https) == DOMAIN

            # The scoring port itself is unchanged, for callers inside the cluster.
            async with session.post(f"http://127.0.0.1:{port}/api/v1/service/echo/score", data=b"x") as resp:
                assert resp.status == 200
        process.terminate()
        assert await asyncio.wait_for(process.wait(), 15) == 0
        log = (await process.stderr.read()).decode()
        assert KEY_AUTHORIZATION not in log
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    # The solver lookup needs nothing the router's Role does not already grant.
    assert set(standin.calls) <= ROUTER_API_CALLS


@pytest_asyncio.fixture
async def responder(standin, solver):
    """An AcmeResponder on an HttpServer in this process (`serve` wires the same two together)."""
    api = KubeApi(str(standin.server.make_url("")).rstrip("/"), None, None)
    api._token = TOKEN  # noqa: SLF001 (no token file in this test)
    api._token_read = float("inf")
    await api.start()
    acme = AcmeResponder(AcmeOptions(https_port=8443), api, "router-ns")
    await acme.start()
    server = HttpServer(acme.handle)
    await server.listen("127.0.0.1", 0)
    yield acme, standin, solver, f"http://127.0.0.1:{server.port}"
    await server.shutdown(1)
    await acme.stop()
    await api.close()




async def test_solvers_are_asked_in_turn_and_only_ready_ones(responder):
    acme, standin, solver, base = responder
    dead = free_port()  # a pod that went away: connection refused
    standin.put("endpointslices", "router-ns", solver_slice("a-dead", dead))
    standin.put("endpointslices", "router-ns", solver_slice("b-live", solver.port))
    standin.put("endpointslices", "router-ns", solver_slice("c-starting", 1, ready=False))
    # A slice of another Service in the namespace (the router's peers) is not a solver.
    standin.put("endpointslices", "router-ns", {**solver_slice("router-peers-1", 2),
                                                 "metadata": {"name": "router-peers-1", "labels": {}}})
    assert await until(lambda: len(acme.solvers) == 2)
    assert sorted(p for _, p in acme.solvers) == sorted([dead, solver.port])
    async with aiohttp.ClientSession() as session:
        assert await get(session, f"{base}/.well-known/acme-challenge/{CHALLENGE}") == (200, KEY_AUTHORIZATION, None)
        # HEAD is a GET without the body; other methods and malformed tokens are not challenges.
        assert (await get(session, f"{base}/.well-known/acme-challenge/{CHALLENGE}", method="HEAD"))[0] == 200
        assert (await get(session, f"{base}/.well-known/acme-challenge/a%2Fb"))[0] == 404
        assert (await get(session, f"{base}/.well-known/acme-challenge/{CHALLENGE}", method="POST"))[0] == 404
        standin.delete("endpointslices", "router-ns", "b-live")
        assert await until(lambda: len(acme.solvers) == 1)
        assert (await get(session, f"{base}/.well-known/acme-challenge/{CHALLENGE}"))[0] == 404


async def test_redirects_keep_path_query_and_name_and_refuse_a_bad_host(responder):
    _, _, _, base = responder
    async with aiohttp.ClientSession() as session:
        # The public HTTPS port is not 443 here, so it is named; the client's port 80 is dropped.
        assert (await get(session, f"{base}/api/v1/endpoint/fraud/score?a=1&b=%20", host=f"{DOMAIN}:80")
                == (308, "use HTTPS\n", f"https://{DOMAIN}:8443/api/v1/endpoint/fraud/score?a=1&b=%20"))
        assert (await get(session, f"{base}/a%20b", host="[2001:db8::1]"))[2] == "https://[2001:db8::1]:8443/a%20b"
        assert (await get(session, f"{base}/", host="bad host\\x"))[0] == 400

    # A refused upload is not read: the connection closes after the answer instead of waiting for it.
    reader, writer = await asyncio.open_connection("127.0.0.1", int(base.rsplit(":", 1)[1]))
    writer.write(f"POST /score HTTP/1.1\r\nHost: {DOMAIN}\r\nContent-Length: 1000000\r\n\r\n".encode() + b"x" * 1000)
    answer = await asyncio.wait_for(reader.read(), 5)  # EOF comes: the server closed its side
    assert answer.startswith(b"HTTP/1.1 308") and b"Connection: close" in answer
    writer.close()

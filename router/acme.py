"""The plain-HTTP port beside HTTPS when the certificate comes from an ACME CA (cert-manager, HTTP-01).

There is no ingress controller: cert-manager starts a solver pod (and a Service, whose labels its
EndpointSlices carry) in the router's namespace for each challenge, and the CA, and cert-manager's own
self-check, fetch `http://<name>/.well-known/acme-challenge/<token>` through the load balancer's port 80.
This listener forwards exactly that path to the solver pods; every other request is redirected to HTTPS
with 308, which keeps the method and body, so nothing is served in clear text.
"""
from __future__ import annotations

import asyncio
import logging
import re
from urllib.parse import quote

import aiohttp

from .backends.kubeapi import KubeApi, list_and_watch, resource_path
from .backends.kubernetes import serving_addresses, url_host
from .http.request import Request
from .http.response import TEXT, Response
from .settings import AcmeOptions

log = logging.getLogger("router.acme")
CHALLENGE_PREFIX = "/.well-known/acme-challenge/"
TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")  # RFC 8555 8.3: base64url characters only
HOST = re.compile(rb"([A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])(:[0-9]{1,5})?")
SOLVER_TIMEOUT = aiohttp.ClientTimeout(total=3)
MAX_ANSWER_BYTES = 4096  # a key authorization is ~90 bytes


class AcmeResponder:
    def __init__(self, options: AcmeOptions, api: KubeApi, namespace: str) -> None:
        self.options = options
        self.api = api
        self.namespace = namespace
        self.solvers: list[tuple[str, int]] = []
        self._task: asyncio.Task | None = None
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=SOLVER_TIMEOUT)
        path = resource_path("discovery.k8s.io", "v1", self.namespace, "endpointslices")
        self._task = asyncio.get_running_loop().create_task(
            list_and_watch(self.api, path, self.options.solver_label_selector, self._on_slices))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    def _on_slices(self, slices: list[dict]) -> None:
        self.solvers = serving_addresses(slices, self.options.solver_port)

    async def handle(self, request: Request, response: Response) -> None:
        host = request.header(b"host")
        if host is None or not HOST.fullmatch(host):
            response.send_text(400, "a Host header naming this server is required\n")
            return
        if request.path.startswith(CHALLENGE_PREFIX):
            await self._challenge(request, response, host.decode())
        else:
            self._redirect(request, response, host.decode())

    async def _challenge(self, request: Request, response: Response, host: str) -> None:
        token = request.path[len(CHALLENGE_PREFIX):]
        if request.method not in (b"GET", b"HEAD") or not TOKEN.fullmatch(token):
            response.send_text(404, "not found\n")
            return
        # Each solver answers only its own token (and domain), so ask them in turn; usually there is one.
        for address, port in self.solvers:
            answer = await self._ask(address, port, request.path, host)
            if answer is not None:
                response.send(200, [TEXT], answer)
                return
        log.warning("ACME challenge %s: none of %d solver pods knows it", token, len(self.solvers))
        response.send_text(404, "no ACME solver knows this token\n")

    async def _ask(self, address: str, port: int, path: str, host: str) -> bytes | None:
        url = f"http://{url_host(address)}:{port}{path}"
        try:
            # The solver checks the Host header against the domain it was started for.
            async with self._session.get(url, headers={"Host": host}, allow_redirects=False) as answer:
                if answer.status != 200:
                    return None
                body = await answer.content.read(MAX_ANSWER_BYTES + 1)
                return body if len(body) <= MAX_ANSWER_BYTES else None
        except (aiohttp.ClientError, asyncio.TimeoutError) as err:
            log.warning("ACME solver %s:%d: %s", address, port, err)
            return None

    def _redirect(self, request: Request, response: Response, host: str) -> None:
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        port = "" if self.options.https_port == 443 else f":{self.options.https_port}"
        # The path is as the client sent it: its escapes stay (`%` is safe), anything else unsafe is escaped.
        target = quote(request.path.encode("utf-8", "surrogateescape"), safe="/:@!$&'()*+,;=-._~%")
        if request.query:
            target += "?" + request.query.decode("latin-1")
        location = f"https://{name}{port}{target}"
        # A body is not read: the client sends it again to the new location, and this connection closes.
        response.close = bool(request.content_length) or request.chunked
        response.send_text(308, "use HTTPS\n", [(b"Location", location.encode("latin-1"))])

"""A stand-in OpenID Connect issuer on 127.0.0.1, shaped like a Microsoft Entra ID tenant (discovery at
`<issuer>/.well-known/openid-configuration`, keys at `/<tenant>/discovery/v2.0/keys`), served over real HTTPS
with a certificate from a test CA that only the tests trust. The test holds the signing keys: it mints
tokens, rotates keys, makes the discovery document lie, slows the issuer down or takes it off the network,
and counts every request that arrives."""
from __future__ import annotations

import asyncio
import collections
import datetime as dt
import ipaddress
import json
import ssl
import time
from pathlib import Path

import jwt
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"


def make_test_ca(folder: Path) -> tuple[Path, ssl.SSLContext]:
    """(the CA's PEM file, a server context with a 127.0.0.1 certificate it signed)."""
    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "aks-serving test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=1))
          .not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                       crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(leaf_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=1)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    ca_file, cert_file, key_file = folder / "ca.pem", folder / "leaf.pem", folder / "leaf.key"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(leaf_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                serialization.NoEncryption()))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_file, key_file)
    return ca_file, server


class StandInIssuer:
    def __init__(self, folder: Path, tenant: str = TENANT) -> None:
        self.tenant = tenant
        self.ca_file, self._server_ssl = make_test_ca(folder)
        self.keys: dict[str, rsa.RSAPrivateKey] = {}  # kid -> private key; the JWKS publishes their public halves
        self.requests: collections.Counter[str] = collections.Counter()  # path -> count
        self.discovery_issuer: str | None = None  # None: the real issuer; else what the document claims
        self.jwks_uri: str | None = None  # None: its own keys URL; else where the document points
        self.extra_jwks_entries: list = []  # published after the real keys, as they are
        self.delay = 0.0  # seconds every answer waits (a slow IdP)
        self.port = 0
        self._runner: web.AppRunner | None = None
        self.add_key("key-1")

    @property
    def base(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def issuer(self) -> str:  # Entra's v2.0 form
        return f"{self.base}/{self.tenant}/v2.0"

    @property
    def discovery_path(self) -> str:
        return f"/{self.tenant}/v2.0/.well-known/openid-configuration"

    @property
    def jwks_path(self) -> str:
        return f"/{self.tenant}/discovery/v2.0/keys"

    def add_key(self, kid: str) -> rsa.RSAPrivateKey:
        self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return self.keys[kid]

    def mint(self, audience="api://scoring", kid: str = "key-1", key=None, algorithm: str = "RS256",
             **claims) -> str:
        now = int(time.time())
        payload = {"iss": self.issuer, "aud": audience, "sub": "caller", "iat": now, "nbf": now, "exp": now + 600,
                   **claims}
        payload = {k: v for k, v in payload.items() if v is not None}
        return jwt.encode(payload, key if key is not None else self.keys[kid], algorithm=algorithm,
                          headers={"kid": kid} if kid else None)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get(self.discovery_path, self._discovery)
        app.router.add_get(self.jwks_path, self._jwks)
        return app

    async def _discovery(self, request: web.Request) -> web.Response:
        await self._count(request)
        return web.json_response({"issuer": self.discovery_issuer or self.issuer,
                                  "jwks_uri": self.jwks_uri or f"{self.base}{self.jwks_path}",
                                  "id_token_signing_alg_values_supported": ["RS256"]})

    async def _jwks(self, request: web.Request) -> web.Response:
        await self._count(request)
        keys = []
        for kid, key in self.keys.items():
            jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
            keys.append({**jwk, "kid": kid, "use": "sig"})  # as Entra: no `alg` in its keys
        return web.json_response({"keys": keys + self.extra_jwks_entries})

    async def _count(self, request: web.Request) -> None:
        self.requests[request.path] += 1
        if self.delay:
            await asyncio.sleep(self.delay)

    @property
    def jwks_fetches(self) -> int:
        return self.requests[self.jwks_path]

    async def start(self, port: int = 0) -> None:
        self._runner = web.AppRunner(self.app(), shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port or self.port, ssl_context=self._server_ssl)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Off the network: connections are refused until `start()` again (on the same port)."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

"""The signing keys an issuer publishes (a JWKS), found through OIDC discovery or at a fixed URL, and cached.

Forged tokens must not turn the router into a client that floods the identity provider, and an identity
provider that is down must not take scoring down with it. So:
- one fetch at a time, which every request that needs its result shares (and none can cancel);
- a token whose `kid` is unknown starts a refetch (key rotation) at most once per `jwksRefetchSeconds`;
- once the cache time has passed, requests go on with the cached keys while one refresh runs beside them;
- a failed fetch keeps the keys already held, and is retried no sooner than `jwksRefetchSeconds` later;
- each fetch (discovery and JWKS together) is bounded in time, size and key count, and follows no redirect.
With discovery, the document's `issuer` must equal the configured issuer character for character (OpenID
Connect Discovery 1.0, section 4.3): a multi-tenant document (Entra's `common`, whose issuer is a
`{tenantid}` template) or another issuer's document is refused and no key from it is trusted.
"""
from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
from dataclasses import dataclass
from typing import Any, Callable

import aiohttp
import jwt

from .settings import TokenAuth

log = logging.getLogger("router.jwks")
MAX_DOCUMENT_BYTES = 1024 * 1024  # discovery documents and key sets are a few KiB
MAX_KEYS = 100  # Entra publishes about six
SIGNATURE_KEY_TYPES = ("RSA", "EC", "OKP")  # asymmetric only: an `oct` key would be a shared secret


class FetchError(ValueError):
    """Why a discovery document or key set was not taken (logged; the cached keys stay)."""


@dataclass(frozen=True)
class VerificationKey:
    key: Any  # a cryptography public key
    algorithm: str | None = None  # the JWK's own `alg`, when it names one: a token must then use exactly it


class PublishedKeys:
    """One issuer's key set, shared by every service that trusts it."""

    def __init__(self, config: TokenAuth, session_factory=aiohttp.ClientSession,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self._session_factory = session_factory
        self._clock = clock
        self._ssl: ssl.SSLContext | bool = ssl.create_default_context(cafile=str(config.ca_file)) \
            if config.ca_file else True
        self._by_kid: dict[str, VerificationKey] = {}
        self._without_kid: list[VerificationKey] = []
        self._loaded = False
        self._expires = 0.0
        self._next_fetch_allowed = 0.0
        self._fetch: asyncio.Task | None = None
        self.fetches = 0  # attempts started (for the status page and tests)

    @property
    def source(self) -> str:
        return self.config.discovery_url or self.config.jwks_url or ""

    async def lookup(self, kid: str | None) -> list[VerificationKey]:
        """The keys a token with this `kid` may be verified with; a token without one, only keys published
        without one: trying every key (up to 100 RSA verifications) for each forged kid-less token would make
        the router's CPU the attacker's lever, and Entra and every common issuer name the key."""
        if not self._loaded or (kid is not None and kid not in self._by_kid):
            fetch = self._start_fetch()
            if fetch is not None:
                await asyncio.shield(fetch)  # a client that goes away does not cancel the shared fetch
        elif self._clock() >= self._expires:
            self._start_fetch()  # refresh beside the requests; they go on with the cached keys
        if kid is None:
            return list(self._without_kid)
        found = self._by_kid.get(kid)
        return [found] if found is not None else []

    def _start_fetch(self) -> asyncio.Task | None:
        """The fetch under way, else a new one if the last started long enough ago, else None."""
        if self._fetch is not None and not self._fetch.done():
            return self._fetch
        now = self._clock()
        if now < self._next_fetch_allowed:
            return None
        self._next_fetch_allowed = now + self.config.jwks_refetch_seconds
        self.fetches += 1
        self._fetch = asyncio.get_running_loop().create_task(self._refresh())
        return self._fetch

    async def _refresh(self) -> None:
        try:
            timeout = aiohttp.ClientTimeout(total=self.config.fetch_timeout_seconds)
            async with self._session_factory(timeout=timeout, trust_env=True) as session:
                jwks_url = self.config.jwks_url or await self._discover(session)
                by_kid, without_kid = parse_key_set(await self._get_json(session, jwks_url))
        except Exception as e:  # noqa: BLE001 - what the network sends must never fail a request or the loop
            log.warning("keys from %s not refreshed (%s: %s); keeping %d cached keys", self.source,
                        type(e).__name__, e, len(self._by_kid) + len(self._without_kid))
            return
        self._by_kid, self._without_kid, self._loaded = by_kid, without_kid, True
        self._expires = self._clock() + self.config.jwks_cache_seconds

    async def _discover(self, session: aiohttp.ClientSession) -> str:
        document = await self._get_json(session, self.config.discovery_url)
        issuer = document.get("issuer")
        if isinstance(issuer, str) and "{" in issuer:
            raise FetchError(f"the discovery document is multi-tenant (issuer {issuer!r}); only a single-tenant "
                             f"issuer can be trusted, so name your tenant in the issuer")
        if issuer != self.config.issuer:
            raise FetchError(f"the discovery document names issuer {issuer!r}, not {self.config.issuer!r}")
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str) or not jwks_uri.startswith("https://"):
            raise FetchError(f"the discovery document's jwks_uri {jwks_uri!r} is not an https:// URL")
        return jwks_uri

    async def _get_json(self, session: aiohttp.ClientSession, url: str) -> dict:
        async with session.get(url, ssl=self._ssl, allow_redirects=False,
                               headers={"Accept": "application/json"}) as resp:
            if resp.status != 200:
                raise FetchError(f"{url} answered {resp.status}")
            if (resp.content_length or 0) > MAX_DOCUMENT_BYTES:
                raise FetchError(f"{url} sent more than {MAX_DOCUMENT_BYTES} bytes")
            body = bytearray()
            async for chunk in resp.content.iter_chunked(64 * 1024):
                body += chunk
                if len(body) > MAX_DOCUMENT_BYTES:
                    raise FetchError(f"{url} sent more than {MAX_DOCUMENT_BYTES} bytes")
        document = json.loads(body)
        if not isinstance(document, dict):
            raise FetchError(f"{url} sent no JSON object")
        return document


def parse_key_set(document: dict) -> tuple[dict[str, VerificationKey], list[VerificationKey]]:
    """The signature keys of a JWKS (RFC 7517), by `kid`; keys meant for encryption or unusable are skipped."""
    entries = document.get("keys")
    if not isinstance(entries, list):
        raise FetchError("the key set has no `keys` list")
    by_kid: dict[str, VerificationKey] = {}
    without_kid: list[VerificationKey] = []
    for entry in entries[:MAX_KEYS]:
        if not isinstance(entry, dict) or entry.get("kty") not in SIGNATURE_KEY_TYPES \
                or entry.get("use", "sig") != "sig":
            continue
        try:
            key = VerificationKey(jwt.PyJWK(entry).key, entry.get("alg") if isinstance(entry.get("alg"), str) else None)
        except (jwt.PyJWTError, ValueError, TypeError, KeyError):  # malformed numbers, unknown curves, ...
            continue
        kid = entry.get("kid")
        if isinstance(kid, str) and kid:
            by_kid[kid] = key
        else:
            without_kid.append(key)
    if not by_kid and not without_kid:
        raise FetchError("the key set has no usable signature key")
    return by_kid, without_kid


class KeySets:
    """One `PublishedKeys` per issuer and fetch settings, so a thousand services behind one tenant fetch once."""

    def __init__(self, session_factory=aiohttp.ClientSession) -> None:
        self._sets: dict[tuple, PublishedKeys] = {}
        self._session_factory = session_factory

    def for_config(self, config: TokenAuth) -> PublishedKeys:
        identity = (config.discovery_url, config.jwks_url, config.issuer if config.discovery_url else None,
                    config.ca_file, config.jwks_cache_seconds, config.jwks_refetch_seconds,
                    config.fetch_timeout_seconds)
        if identity not in self._sets:
            self._sets[identity] = PublishedKeys(config, self._session_factory)
        return self._sets[identity]

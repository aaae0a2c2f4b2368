"""Per-service authentication: `key` (v1 primary/secondary keys), `token` (JWT), `none`.

Every failure looks the same to the client (401, `WWW-Authenticate: Bearer`, one fixed body), so a
caller cannot learn which check failed.
"""
from __future__ import annotations

import hashlib
from hmac import compare_digest
import logging
import os
from pathlib import Path
from typing import Final, Protocol

import jwt

from .clock import monotonic, wall_time
from .jwks import KeySets, PublishedKeys, VerificationKey
from .settings import AuthConfig, TokenAuth

log = logging.getLogger("router.auth")
KEY_FILE_RECHECK_SECONDS = 1.0  # stat the key files at most this often (keeps syscalls off most requests)
PRESENTED_DIGESTS: Final = 64  # credentials whose digest is remembered (a SHA-256 was 5 % of a request)
# Longer credentials are hashed every time: none is a key (ours are 32 characters), and remembering them
# would let any client pin PRESENTED_DIGESTS header-sized values in every authenticator.
REMEMBERED_BYTES: Final = 256


class Authenticator(Protocol):
    async def check(self, authorization: str | None) -> bool: ...

    def check_now(self, authorization: str | None) -> bool | None:
        """`check` without waiting, or None when it would have to wait (then `check` is awaited)."""


def bearer(authorization: str | None) -> str | None:
    """The credential of `Bearer <credential>`; the scheme is case-insensitive (RFC 9110 11.1)."""
    if not authorization:
        return None
    scheme, _, credential = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return credential.strip(" \t") or None


def _digest(value: bytes) -> bytes:
    return hashlib.sha256(value).digest()


class AllowAll:
    async def check(self, authorization: str | None) -> bool:
        return True

    def check_now(self, authorization: str | None) -> bool:
        return True


class KeyAuth:
    """Primary and secondary keys, held as SHA-256 digests (and as the last few credentials presented).

    Comparing fixed-length digests with `hmac.compare_digest` makes the time independent of the key's
    length and content; both keys are compared every time (no short-circuit), so timing does not tell
    whether the presented value matched the primary or the secondary.

    The digests of the last few credentials presented are remembered, since a client sends the same one on
    every request. Finding one is a dict lookup: it hashes with Python's per-process random SipHash key and
    compares bytes only on an equal 64-bit hash, so its time says whether this exact credential was seen
    lately, never how much of it is right. Whatever is presented still goes through the comparison above.
    """

    def __init__(self, key_files: list[Path]) -> None:
        self._files = list(key_files)
        self._stamps: list[tuple[int, int] | None] = []
        self._digests: list[bytes] = []
        self._presented: dict[bytes, bytes] = {}
        self._next_check = 0.0
        if self._files:
            self._reload_if_changed(force=True)

    def set_keys(self, keys: list[bytes]) -> None:
        """Replace the keys (the Kubernetes Secret watcher calls this)."""
        self._digests = [_digest(k) for k in keys if k]
        self._presented.clear()  # a rotated-out key is not kept in memory as a remembered credential

    async def check(self, authorization: str | None) -> bool:
        return self.check_now(authorization)

    def check_now(self, authorization: str | None) -> bool:
        if self._files and monotonic() >= self._next_check:
            self._reload_if_changed()
        presented = self._digest_of((bearer(authorization) or "").encode())
        matched = False
        for expected in self._digests:  # empty keys are never stored, so a missing header cannot match
            matched |= compare_digest(presented, expected)
        return matched

    def _digest_of(self, credential: bytes) -> bytes:
        if len(credential) > REMEMBERED_BYTES:
            return _digest(credential)
        digest = self._presented.get(credential)
        if digest is None:
            if len(self._presented) >= PRESENTED_DIGESTS:  # many different credentials: start afresh
                self._presented.clear()
            digest = self._presented[credential] = _digest(credential)
        return digest

    def _reload_if_changed(self, force: bool = False) -> None:
        self._next_check = monotonic() + KEY_FILE_RECHECK_SECONDS
        stamps = [_stamp(f) for f in self._files]
        if not force and stamps == self._stamps:
            return
        keys = []
        for f in self._files:
            try:
                keys.append(f.read_bytes().strip())
            except OSError as e:  # a key file mid-rotation: keep serving with the one still readable
                log.warning("cannot read key file %s: %s", f, e.strerror)
        self._stamps = stamps
        self.set_keys(keys)


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


class JwtAuth:
    """JWT bearer tokens: allow-listed algorithms, `exp` and `iat` required, issuer and audience checked.

    Keys are local (publicKeyFiles, signingKeyFile), published (jwksUrl, or an OIDC issuer's discoveryUrl,
    see jwks.py), or, with jwksUrl, both; an OIDC issuer's are never mixed with local ones (settings.py).
    """

    def __init__(self, config: TokenAuth, published: PublishedKeys | None = None) -> None:
        self.config = config
        self._static_keys = [VerificationKey(load_public_key(p)) for p in config.public_key_files]
        if config.signing_key_file:
            self._static_keys.append(VerificationKey(load_private_key(config.signing_key_file).public_key()))
        if published is None and (config.jwks_url or config.discovery_url):
            published = PublishedKeys(config)
        self._published = published

    def check_now(self, authorization: str | None) -> None:
        return None  # keys may have to be fetched; and a signature check dwarfs a task

    async def check(self, authorization: str | None) -> bool:
        token = bearer(authorization)
        # Cap before any parsing: a huge header must not cost base64 and JSON work.
        if token is None or len(token) > self.config.max_token_bytes:
            return False
        try:
            header = jwt.get_unverified_header(token)
            if header.get("alg") not in self.config.algorithms:
                return False  # before any key lookup: `none`, HS* and the rest never start a JWKS fetch
            for key in await self._candidate_keys(header.get("kid")):
                if key.algorithm is not None and key.algorithm != header["alg"]:
                    continue  # a JWK that names its algorithm verifies only that one (RFC 7517 4.4)
                try:
                    self._decode(token, key.key)
                    return True
                except (jwt.InvalidSignatureError, jwt.InvalidKeyError):
                    continue  # try the next key; any other error is final
        except (jwt.PyJWTError, ValueError, TypeError) as e:
            log.debug("token refused: %s", type(e).__name__)
        return False

    def _decode(self, token: str, key) -> dict:
        c = self.config
        return jwt.decode(token, key, algorithms=list(c.algorithms), audience=c.audience, issuer=c.issuer,
                          leeway=c.leeway_seconds, options={"require": ["exp", "iat", "iss", "aud"]})

    async def _candidate_keys(self, kid) -> list[VerificationKey]:
        if self._published is None:
            return self._static_keys
        if kid is not None and not isinstance(kid, str):
            return []
        return await self._published.lookup(kid) + self._static_keys


def load_public_key(path: Path):
    from cryptography.hazmat.primitives.serialization import load_pem_public_key
    return load_pem_public_key(Path(path).read_bytes())


def load_private_key(path: Path):
    from cryptography.hazmat.primitives.serialization import load_pem_private_key
    return load_pem_private_key(Path(path).read_bytes(), password=None)


def mint_token(config: TokenAuth, subject: str, now: float | None = None) -> dict:
    """What v1's `get_token()` returned: the token, its type and when to refresh / when it expires."""
    if config.signing_key_file is None:
        raise ValueError("auth.token.signingKeyFile is not set for this service")
    issued = int(wall_time() if now is None else now)
    expires = issued + config.lifetime_seconds
    claims = {"iss": config.issuer, "aud": config.audience, "sub": subject, "iat": issued, "exp": expires}
    headers = {"kid": config.key_id} if config.key_id else None
    token = jwt.encode(claims, load_private_key(config.signing_key_file), algorithm=config.algorithms[0],
                       headers=headers)
    return {"accessToken": token, "tokenType": "Bearer", "refreshAfter": issued + config.lifetime_seconds // 2,
            "expiryOn": expires}


ENTRA_AUTHORITIES: Final = ("https://login.microsoftonline.", "https://login.chinacloudapi.cn/", "https://sts.windows.net/",
                     "https://sts.chinacloudapi.cn/")


def token_source(config: TokenAuth) -> str:
    """One line for a service whose tokens an OIDC issuer signs: this stack cannot mint them, the issuer does."""
    audience = config.audience if isinstance(config.audience, str) else config.audience[0]
    if config.issuer.startswith(ENTRA_AUTHORITIES):
        return (f"tokens come from Microsoft Entra ID ({config.issuer}), not from this stack: "
                f"az account get-access-token --scope {audience}/.default --query accessToken -o tsv")
    return (f"tokens come from the identity provider {config.issuer}, not from this stack: ask it for an access "
            f"token with audience {audience}")


def build_authenticator(config: AuthConfig, key_sets: KeySets | None = None) -> Authenticator:
    """`key_sets`: shared by the router's services, so services trusting one issuer share its fetched keys."""
    if config.mode == "none":
        return AllowAll()
    if config.mode == "key":
        return KeyAuth(config.key_files)
    token = config.token
    assert token is not None  # the config's own check: mode "token" comes with its settings
    published = key_sets.for_config(token) if key_sets is not None and (token.jwks_url or token.discovery_url) \
        else None
    return JwtAuth(token, published)

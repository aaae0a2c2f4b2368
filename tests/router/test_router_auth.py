"""Auth matrix: keys (primary, secondary, rotation) and JWTs (every way a token can be wrong)."""
import base64
import json
import time

import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from router.auth import JwtAuth, KeyAuth, mint_token
from router.settings import TokenAuth

pytestmark = pytest.mark.asyncio
ISS, AUD = "https://issuer.test", "aks-serving"


def _rsa_pair(tmp_path, name):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = tmp_path / f"{name}.pem"
    public = tmp_path / f"{name}.pub.pem"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))
    return key, private, public


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("jwt")
    good, good_private, good_public = _rsa_pair(tmp, "good")
    other, _, _ = _rsa_pair(tmp, "other")
    return {"key": good, "private": good_private, "public": good_public, "other": other}


def _claims(**over):
    now = int(time.time())
    claims = {"iss": ISS, "aud": AUD, "sub": "someone", "iat": now, "exp": now + 600}
    claims.update(over)
    return {k: v for k, v in claims.items() if v is not None}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


async def test_valid_rs256_token_is_accepted(keys):
    auth = JwtAuth(TokenAuth(issuer=ISS, audience=AUD, public_key_files=[keys["public"]]))
    token = jwt.encode(_claims(), keys["key"], algorithm="RS256")
    assert await auth.check(f"Bearer {token}")


def _bad_tokens(keys):
    public_pem = keys["public"].read_bytes()
    good = jwt.encode(_claims(), keys["key"], algorithm="RS256")
    head, body, sig = good.split(".")
    tampered_body = _b64(json.dumps(_claims(sub="admin")).encode())
    hs_with_public = ".".join([
        _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()), _b64(json.dumps(_claims()).encode())])
    import hashlib
    import hmac
    hs_with_public += "." + _b64(hmac.new(public_pem, hs_with_public.encode(), hashlib.sha256).digest())
    alg_none = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode()) + "." + \
        _b64(json.dumps(_claims()).encode()) + "."
    return {
        "alg none": alg_none,
        "HS256 signed with the RS256 public key": hs_with_public,
        "expired": jwt.encode(_claims(iat=int(time.time()) - 7200, exp=int(time.time()) - 3600), keys["key"],
                              algorithm="RS256"),
        "missing exp": jwt.encode(_claims(exp=None), keys["key"], algorithm="RS256"),
        "missing iat": jwt.encode(_claims(iat=None), keys["key"], algorithm="RS256"),
        "wrong aud": jwt.encode(_claims(aud="someone-else"), keys["key"], algorithm="RS256"),
        "wrong iss": jwt.encode(_claims(iss="https://evil.test"), keys["key"], algorithm="RS256"),
        "tampered": f"{head}.{tampered_body}.{sig}",
        "signed by another key": jwt.encode(_claims(), keys["other"], algorithm="RS256"),
        "16 KB header": jwt.encode(_claims(pad="p" * 16384), keys["key"], algorithm="RS256"),
        "garbage": "not.a.token",
    }


@pytest.mark.parametrize("case", ["alg none", "HS256 signed with the RS256 public key", "expired", "missing exp",
                                  "missing iat", "wrong aud", "wrong iss", "tampered", "signed by another key",
                                  "16 KB header", "garbage"])
async def test_bad_tokens_are_refused(keys, case):
    auth = JwtAuth(TokenAuth(issuer=ISS, audience=AUD, public_key_files=[keys["public"]]))
    assert not await auth.check(f"Bearer {_bad_tokens(keys)[case]}")


async def test_oversized_token_is_refused_before_decoding(keys, monkeypatch):
    auth = JwtAuth(TokenAuth(issuer=ISS, audience=AUD, public_key_files=[keys["public"]]))
    calls = []
    monkeypatch.setattr(jwt, "get_unverified_header", lambda t: calls.append(t) or {})
    assert not await auth.check("Bearer " + "a" * 16384)
    assert calls == []


async def test_small_leeway_accepts_just_expired_token(keys):
    auth = JwtAuth(TokenAuth(issuer=ISS, audience=AUD, public_key_files=[keys["public"]], leeway_seconds=30))
    now = int(time.time())
    assert await auth.check("Bearer " + jwt.encode(_claims(iat=now - 100, exp=now - 5), keys["key"], algorithm="RS256"))
    assert not await auth.check("Bearer " + jwt.encode(_claims(iat=now - 100, exp=now - 60), keys["key"],
                                                       algorithm="RS256"))


async def test_jwks_url_keys_are_fetched_and_cached(keys):
    fetches = []
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(keys["key"].public_key()))
    jwk.update({"kid": "k1", "use": "sig", "alg": "RS256"})

    async def jwks(request):
        fetches.append(1)
        return web.json_response({"keys": [jwk]})

    app = web.Application()
    app.router.add_get("/jwks", jwks)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        auth = JwtAuth(TokenAuth(issuer=ISS, audience=AUD, jwks_url=str(server.make_url("/jwks"))))
        token = jwt.encode(_claims(), keys["key"], algorithm="RS256", headers={"kid": "k1"})
        for _ in range(5):
            assert await auth.check(f"Bearer {token}")
        other = jwt.encode(_claims(), keys["other"], algorithm="RS256", headers={"kid": "k1"})
        assert not await auth.check(f"Bearer {other}")
        assert len(fetches) == 1  # cached
    finally:
        await server.close()


async def test_minted_token_is_accepted_and_has_v1_shape(keys):
    config = TokenAuth(issuer=ISS, audience=AUD, signing_key_file=keys["private"], lifetime_seconds=600)
    minted = mint_token(config, "cli", now=time.time())
    assert set(minted) == {"accessToken", "tokenType", "refreshAfter", "expiryOn"}
    assert minted["tokenType"] == "Bearer" and minted["refreshAfter"] < minted["expiryOn"]
    assert await JwtAuth(config).check(f"Bearer {minted['accessToken']}")


async def test_key_auth_primary_secondary_and_rotation(tmp_path, monkeypatch):
    import router.auth
    monkeypatch.setattr(router.auth, "KEY_FILE_RECHECK_SECONDS", 0.0)
    primary, secondary = tmp_path / "p", tmp_path / "s"
    primary.write_text("key-one\n")
    secondary.write_text("key-two")
    auth = KeyAuth([primary, secondary])
    assert await auth.check("Bearer key-one") and await auth.check("Bearer key-two")
    assert not await auth.check("Bearer key-three") and not await auth.check(None)
    assert not await auth.check("Bearer ") and not await auth.check("key-one")
    primary.write_text("key-three")
    assert await auth.check("Bearer key-three") and not await auth.check("Bearer key-one")
    secondary.unlink()  # mid-rotation: the remaining key keeps working
    assert await auth.check("Bearer key-three") and not await auth.check("Bearer key-two")


async def test_key_auth_remembers_few_digests_and_still_compares_every_key(tmp_path):
    """The digests of presented credentials are remembered (a client repeats its key), at most
    PRESENTED_DIGESTS of them, and a remembered one is still compared with the keys in force."""
    import router.auth
    key = tmp_path / "k"
    key.write_text("the-right-key")
    auth = KeyAuth([key])
    assert auth.check_now("Bearer the-right-key")
    for i in range(1000):  # a client trying keys: the memory stays small
        assert not auth.check_now(f"Bearer wrong-{i}")
        assert len(auth._presented) <= router.auth.PRESENTED_DIGESTS
    assert auth.check_now("Bearer the-right-key") and auth.check_now("bearer the-right-key")
    auth.set_keys([b"another-key"])  # rotated: the remembered digest of the old key no longer matches
    assert not auth.check_now("Bearer the-right-key") and auth.check_now("Bearer another-key")


async def test_token_auth_on_the_wire(keys, models, router_client):
    """A service with token auth: 401 + WWW-Authenticate for a bad token, 200 for a good one."""
    from router_testkit import service_config
    (m,) = await models(1)
    svc = service_config([m.url])
    svc["auth"] = {"mode": "token", "token": {"issuer": ISS, "audience": AUD, "signingKeyFile": str(keys["private"])}}
    client, _ = await router_client({"services": {"echo": svc}})
    good = mint_token(TokenAuth(issuer=ISS, audience=AUD, signing_key_file=keys["private"]), "x")["accessToken"]
    ok = await client.post("/api/v1/service/echo/score", data=b"x", headers={"Authorization": f"Bearer {good}"})
    assert ok.status == 200
    bad = await client.post("/api/v1/service/echo/score", data=b"x",
                            headers={"Authorization": f"Bearer {_bad_tokens(keys)['expired']}"})
    assert bad.status == 401 and bad.headers["WWW-Authenticate"] == "Bearer"


async def test_key_auth_remembers_no_credential_past_a_rotation_and_no_large_one(tmp_path):
    """A rotated-out key is not kept in memory (as a remembered credential) after the rotation, and a client
    sending huge bearer values (up to the header limit, non-ASCII doubles in UTF-8) cannot make every
    authenticator hold megabytes: only credentials of a key's size are remembered."""
    import router.auth
    auth = KeyAuth([])
    auth.set_keys([b"old-key"])
    assert auth.check_now("Bearer old-key")
    auth.set_keys([b"new-key"])  # rotated (the Secret watcher, or a key file changed)
    assert b"old-key" not in auth._presented
    assert not auth.check_now("Bearer old-key") and auth.check_now("Bearer new-key")
    huge = "\u00ff" * 60_000  # as a 64 KiB header decodes (latin-1): 120 kB once encoded
    for i in range(router.auth.PRESENTED_DIGESTS):
        assert not auth.check_now(f"Bearer {i}{huge}")
    assert sum(len(k) for k in auth._presented) <= router.auth.PRESENTED_DIGESTS * router.auth.REMEMBERED_BYTES
    assert auth.check_now("Bearer new-key") and not auth.check_now(f"Bearer 0{huge}")

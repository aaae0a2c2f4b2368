"""Token auth that trusts an OpenID Connect issuer (Microsoft Entra ID or any other), end to end through the
router's scoring port. The issuer is a stand-in (oidc_standin.py: Entra-shaped, real HTTPS on 127.0.0.1 with
a test CA the router is told to trust), because Entra itself cannot be reached from these tests."""
import asyncio
import base64
import hashlib
import hmac
import json
import logging
import time

import jwt
import pytest
import pytest_asyncio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import ValidationError

from oidc_standin import StandInIssuer
from router.auth import mint_token, token_source
from router.settings import TokenAuth

pytestmark = pytest.mark.asyncio
AUDIENCE = "api://scoring"
SCORE = "/api/v1/service/echo/score"


@pytest_asyncio.fixture
async def issuer(tmp_path):
    idp = StandInIssuer(tmp_path)
    await idp.start()
    yield idp
    await idp.stop()


def oidc_config(urls, idp: StandInIssuer, **token) -> dict:
    settings = {"issuer": idp.issuer, "audience": AUDIENCE, "discoveryUrl": f"{idp.issuer}/.well-known/openid-configuration",
                "caFile": str(idp.ca_file), **token}
    return {"services": {"echo": {"auth": {"mode": "token", "token": settings},
                                  "backend": {"kind": "static", "urls": urls}, "autoscale": {"enabled": False}}}}


async def started(models, router_client, idp, **token):
    (m,) = await models(1)
    client, router = await router_client(oidc_config([m.url], idp, **token))
    return client, router, m


async def answer(client, token: str | None) -> tuple[int, bytes, str | None]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with client.post(SCORE, data=b'{"data": [1]}', headers=headers) as resp:
        return resp.status, await resp.read(), resp.headers.get("WWW-Authenticate")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(header: dict, claims: dict, secret: bytes | None = None) -> str:
    head = _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(claims).encode())
    signature = hmac.new(secret, head.encode(), hashlib.sha256).digest() if secret is not None else b""
    return head + "." + _b64(signature)


def stack_signing_key(tmp_path):
    """The stack's own signing key for the service, as components/keys.py TokenSigningKey makes it."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    path = tmp_path / "stack-signing.pem"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return key, path


def bad_tokens(idp: StandInIssuer, tmp_path) -> dict[str, str]:
    now = int(time.time())
    claims = {"iss": idp.issuer, "aud": AUDIENCE, "sub": "caller", "iat": now, "nbf": now, "exp": now + 600}
    public_pem = idp.keys["key-1"].public_key().public_bytes(serialization.Encoding.PEM,
                                                             serialization.PublicFormat.SubjectPublicKeyInfo)
    stack_key, stack_key_file = stack_signing_key(tmp_path)
    stack_minted = mint_token(TokenAuth(issuer="aks-serving", audience="echo", signing_key_file=stack_key_file),
                              "cli")["accessToken"]
    return {
        "wrong iss": idp.mint(iss="https://login.microsoftonline.com/00000000-0000-0000-0000-000000000000/v2.0"),
        "iss with a trailing slash": idp.mint(iss=idp.issuer + "/"),
        "wrong aud": idp.mint(audience="api://another-api"),
        "expired": idp.mint(iat=now - 7200, nbf=now - 7200, exp=now - 3600),
        "nbf in the future": idp.mint(nbf=now + 3600),
        "iat in the future": idp.mint(iat=now + 3600),
        "no exp": idp.mint(exp=None),
        "alg none": _unsigned({"alg": "none", "typ": "JWT", "kid": "key-1"}, claims),
        "HS256 with the public key as secret": _unsigned({"alg": "HS256", "typ": "JWT", "kid": "key-1"}, claims,
                                                         secret=public_pem),
        "RS384 not in the allow-list": idp.mint(algorithm="RS384"),
        "unknown kid": idp.mint(kid="key-unknown", key=idp.keys["key-1"]),
        "kid of the issuer, signed by another key": idp.mint(key=rsa.generate_private_key(65537, 2048)),
        "the stack's self-signed token for the service": stack_minted,
        "signed by the stack key with the issuer's claims": idp.mint(key=stack_key),
        "signed by the stack key, no kid": idp.mint(kid=None, key=stack_key),
        # The issuer names every key it publishes: a token without a kid is not tried against each of them.
        "signed by the issuer's key, no kid": idp.mint(kid=None, key=idp.keys["key-1"]),
    }


async def test_a_token_from_the_issuer_passes_and_the_keys_are_fetched_once(models, router_client, issuer):
    client, _, m = await started(models, router_client, issuer)
    for _ in range(5):
        status, body, _ = await answer(client, issuer.mint())
        assert (status, body) == (200, b'{"data": [1]}')
    assert issuer.requests[issuer.discovery_path] == 1 and issuer.jwks_fetches == 1
    assert "authorization" not in m.requests[-1]["headers"]  # the caller's token is not handed to the model


async def test_an_audience_list_accepts_either_audience(models, router_client, issuer):
    client, _, _ = await started(models, router_client, issuer, audience=["api://scoring", "11111111-2222-3333-4444-555555555555"])
    assert (await answer(client, issuer.mint(audience="11111111-2222-3333-4444-555555555555")))[0] == 200
    assert (await answer(client, issuer.mint(audience="api://scoring")))[0] == 200
    assert (await answer(client, issuer.mint(audience="api://elsewhere")))[0] == 401


@pytest.mark.parametrize("case", ["wrong iss", "iss with a trailing slash", "wrong aud", "expired", "nbf in the future",
                                  "iat in the future", "no exp", "alg none", "HS256 with the public key as secret",
                                  "RS384 not in the allow-list", "unknown kid",
                                  "kid of the issuer, signed by another key",
                                  "the stack's self-signed token for the service",
                                  "signed by the stack key with the issuer's claims", "signed by the stack key, no kid",
                                  "signed by the issuer's key, no kid"])
async def test_every_other_token_is_refused_with_the_same_answer(models, router_client, issuer, tmp_path, case):
    client, _, m = await started(models, router_client, issuer)
    refused = await answer(client, None)
    assert refused[0] == 401 and refused[2] == "Bearer"
    assert (await answer(client, issuer.mint()))[0] == 200  # the issuer's keys are there
    assert await answer(client, bad_tokens(issuer, tmp_path)[case]) == refused
    assert len(m.requests) == 1  # no refused request reached the model


@pytest.mark.parametrize("claimed", ["https://login.microsoftonline.com/{tenantid}/v2.0", "other issuer"])
async def test_a_discovery_document_for_another_issuer_is_not_trusted(models, router_client, issuer, caplog, claimed):
    issuer.discovery_issuer = claimed if claimed != "other issuer" else f"{issuer.base}/another-tenant/v2.0"
    client, _, _ = await started(models, router_client, issuer)
    with caplog.at_level(logging.WARNING, logger="router.jwks"):
        assert await answer(client, issuer.mint()) == await answer(client, None)
    assert issuer.jwks_fetches == 0  # its keys were never fetched
    expected = "multi-tenant" if "{tenantid}" in claimed else "names issuer"
    assert expected in caplog.text


async def test_a_key_the_issuer_rotates_in_is_picked_up(models, router_client, issuer):
    client, _, _ = await started(models, router_client, issuer, jwksRefetchSeconds=1)
    assert (await answer(client, issuer.mint()))[0] == 200
    issuer.add_key("key-2")
    # Within the refetch interval an unknown kid does not refetch; after it, one refetch finds the new key.
    assert (await answer(client, issuer.mint(kid="key-2")))[0] == 401
    await asyncio.sleep(1.1)
    assert (await answer(client, issuer.mint(kid="key-2")))[0] == 200
    assert (await answer(client, issuer.mint(kid="key-1")))[0] == 200
    assert issuer.jwks_fetches == 2


async def test_a_key_the_issuer_drops_is_dropped_at_the_next_refresh(models, router_client, issuer):
    client, _, _ = await started(models, router_client, issuer, jwksCacheSeconds=0.5, jwksRefetchSeconds=1)
    old = issuer.mint(kid="key-1")
    assert (await answer(client, old))[0] == 200
    issuer.add_key("key-2")
    del issuer.keys["key-1"]
    await asyncio.sleep(1.1)
    assert (await answer(client, old))[0] == 200  # answered from the cache while the refresh runs beside it
    assert await until_fetches(issuer, 2)
    assert (await answer(client, old))[0] == 401
    assert (await answer(client, issuer.mint(kid="key-2")))[0] == 200


async def until_fetches(idp: StandInIssuer, n: int) -> bool:
    for _ in range(100):
        if idp.jwks_fetches >= n:
            await asyncio.sleep(0.05)  # the fetch's result is taken just after the answer
            return True
        await asyncio.sleep(0.02)
    return False


async def test_the_cached_keys_serve_while_the_issuer_is_down_or_slow(models, router_client, issuer):
    client, _, _ = await started(models, router_client, issuer, jwksCacheSeconds=0.2, jwksRefetchSeconds=1,
                                 fetchTimeoutSeconds=2)
    assert (await answer(client, issuer.mint()))[0] == 200
    token = issuer.mint()
    await issuer.stop()
    await asyncio.sleep(0.3)  # the cache time has passed; every refresh now fails
    for _ in range(3):
        assert (await answer(client, token))[0] == 200
        await asyncio.sleep(0.6)
    # Slow rather than down: a refresh that hangs does not hold a request with a cached key up.
    await issuer.start()
    issuer.delay = 5
    await asyncio.sleep(1.1)
    began = time.monotonic()
    assert (await answer(client, token))[0] == 200
    assert time.monotonic() - began < 0.5


async def test_an_unreachable_issuer_on_a_cold_start_costs_a_bounded_wait(models, router_client, issuer):
    issuer.delay = 10
    client, _, _ = await started(models, router_client, issuer, fetchTimeoutSeconds=1, jwksRefetchSeconds=5)
    began = time.monotonic()
    assert (await answer(client, issuer.mint()))[0] == 401
    assert 0.9 < time.monotonic() - began < 2.5
    began = time.monotonic()  # within the refetch interval nothing is fetched: refused at once
    assert (await answer(client, issuer.mint()))[0] == 401
    assert time.monotonic() - began < 0.3
    assert issuer.requests[issuer.discovery_path] == 1


async def test_concurrent_first_requests_share_one_fetch(models, router_client, issuer):
    client, _, _ = await started(models, router_client, issuer)
    issuer.delay = 0.3
    token = issuer.mint()
    statuses = await asyncio.gather(*(answer(client, token) for _ in range(30)))
    assert [s for s, _, _ in statuses] == [200] * 30
    assert issuer.requests[issuer.discovery_path] == 1 and issuer.jwks_fetches == 1


async def test_a_flood_of_forged_kids_refetches_at_most_once_per_interval(models, router_client, issuer):
    client, _, _ = await started(models, router_client, issuer, jwksRefetchSeconds=1)
    assert (await answer(client, issuer.mint()))[0] == 200
    good = issuer.mint()
    began, sent, statuses = time.monotonic(), 0, []
    while time.monotonic() - began < 2.5:  # 2.5 s of forged tokens, each with a kid never seen
        batch = [issuer.mint(kid=f"forged-{sent + i}", key=issuer.keys["key-1"]) for i in range(20)]
        statuses += await asyncio.gather(*(answer(client, t) for t in batch))
        sent += len(batch)
        assert (await answer(client, good))[0] == 200  # real callers keep getting in meanwhile
    elapsed = time.monotonic() - began
    assert sent >= 200 and {s for s, _, _ in statuses} == {401}
    # The first fetch, then at most one per started second of the flood.
    assert 1 < issuer.jwks_fetches <= 1 + int(elapsed) + 1, (issuer.jwks_fetches, elapsed)
    assert issuer.requests[issuer.discovery_path] == issuer.jwks_fetches


async def test_algorithms_outside_the_allow_list_start_no_fetch(models, router_client, issuer, tmp_path):
    client, _, _ = await started(models, router_client, issuer)
    tokens = bad_tokens(issuer, tmp_path)
    for case in ("alg none", "HS256 with the public key as secret", "RS384 not in the allow-list"):
        assert (await answer(client, tokens[case]))[0] == 401
    assert issuer.requests[issuer.discovery_path] == 0


async def test_a_jwks_uri_over_plain_http_is_refused(models, router_client, issuer, caplog):
    issuer.jwks_uri = "http://127.0.0.1:1/keys"  # the document points its keys at plain HTTP
    client, _, _ = await started(models, router_client, issuer)
    with caplog.at_level(logging.WARNING, logger="router.jwks"):
        assert (await answer(client, issuer.mint()))[0] == 401
    assert "is not an https:// URL" in caplog.text


async def test_the_router_trusts_only_the_named_ca(models, router_client, issuer, tmp_path, caplog):
    (tmp_path / "other").mkdir()
    other_ca = StandInIssuer(tmp_path / "other").ca_file
    client, _, _ = await started(models, router_client, issuer, caFile=str(other_ca))
    with caplog.at_level(logging.WARNING, logger="router.jwks"):
        assert (await answer(client, issuer.mint()))[0] == 401
    assert "certificate verify failed" in caplog.text.lower()
    assert issuer.requests[issuer.discovery_path] == 0  # the TLS handshake failed: nothing was asked


# ---------------------------------------------------------------- settings and the token command


@pytest.mark.parametrize("token, message", [
    ({"discoveryUrl": "http://127.0.0.1:8443/t/v2.0/.well-known/openid-configuration"}, "must be an https:// URL"),
    ({"discoveryUrl": "https://idp.example/.well-known/openid-configuration", "publicKeyFiles": ["/k.pem"]},
     "the only ones trusted"),
    ({"discoveryUrl": "https://idp.example/.well-known/openid-configuration", "jwksUrl": "https://idp.example/k"},
     "the only ones trusted"),
])
async def test_router_settings_refuse_plain_http_and_mixed_trust(token, message):
    with pytest.raises(ValidationError) as error:
        TokenAuth.model_validate({"issuer": "https://idp.example", "audience": "a", **token})
    assert message in str(error.value)


async def test_the_token_command_says_where_tokens_come_from_instead_of_minting(tmp_path, capsys):
    from router.__main__ import main
    config = tmp_path / "router.json"
    entra = "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0"
    document = {"services": {"echo": {"auth": {"mode": "token", "token": {
        "issuer": entra, "audience": "api://scoring", "discoveryUrl": f"{entra}/.well-known/openid-configuration"}},
        "backend": {"kind": "static", "urls": ["http://127.0.0.1:1"]}, "autoscale": {"enabled": False}}}}
    config.write_text(json.dumps(document))
    assert main(["token", "--config", str(config), "--service", "echo"]) == 2
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err.strip() == ("echo: tokens come from Microsoft Entra ID (" + entra + "), not from this stack: "
                               "az account get-access-token --scope api://scoring/.default --query accessToken -o tsv")
    other = TokenAuth(issuer="https://idp.example/realms/ml", audience=["ml-api", "x"],
                      discoveryUrl="https://idp.example/realms/ml/.well-known/openid-configuration")
    assert token_source(other) == ("tokens come from the identity provider https://idp.example/realms/ml, not from "
                                   "this stack: ask it for an access token with audience ml-api")


async def test_only_the_signature_keys_of_a_key_set_are_used(models, router_client, issuer):
    enc = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    enc_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(enc.public_key()))
    secret = b"s" * 32
    issuer.extra_jwks_entries = [
        {**enc_jwk, "kid": "key-enc", "use": "enc"},  # an encryption key never verifies a signature
        {"kty": "oct", "kid": "key-oct", "k": _b64(secret)},  # a shared secret is never a verification key
        {"kty": "RSA", "kid": "key-broken", "n": "!!", "e": "AQAB"}, "not a key",
        {**enc_jwk, "kid": "key-ps", "alg": "PS256"},  # this key verifies PS256 only
    ]
    client, _, _ = await started(models, router_client, issuer, algorithms=["RS256", "PS256"])
    assert (await answer(client, issuer.mint()))[0] == 200  # the usable key is taken despite the junk
    assert (await answer(client, issuer.mint(kid="key-enc", key=enc)))[0] == 401
    assert (await answer(client, issuer.mint(kid="key-ps", key=enc, algorithm="RS256")))[0] == 401
    assert (await answer(client, issuer.mint(kid="key-ps", key=enc, algorithm="PS256")))[0] == 200
    assert (await answer(client, _unsigned({"alg": "HS256", "kid": "key-oct"}, {
        "iss": issuer.issuer, "aud": AUDIENCE, "iat": int(time.time()), "exp": int(time.time()) + 60}, secret)))[0] == 401
    assert issuer.jwks_fetches == 1


async def test_a_broken_key_set_keeps_the_cached_keys(models, router_client, issuer):
    client, _, _ = await started(models, router_client, issuer, jwksCacheSeconds=0.2, jwksRefetchSeconds=1)
    token = issuer.mint()
    assert (await answer(client, token))[0] == 200
    issuer.keys.clear()
    issuer.extra_jwks_entries = ["junk"]  # no usable key: the set is not taken
    await asyncio.sleep(1.1)  # past the cache time and the refetch interval: the next request starts a refresh
    assert (await answer(client, token))[0] == 200
    assert await until_fetches(issuer, 2)
    assert (await answer(client, token))[0] == 200

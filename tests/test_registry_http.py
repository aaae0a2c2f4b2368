"""The registry HTTP client (components/registry_http.py) and the Entra token sources against local servers.

Stand-in: `RegistryStandIn`, a Docker Registry v2 API on 127.0.0.1 answering as ACR does (a 401 bearer
challenge naming its /oauth2/token realm, pull tokens for a refresh token or anonymously, manifests by tag
with Docker-Content-Digest, 404 for an unknown tag); the Entra token endpoint is another on 127.0.0.1.
"""
import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from components import entra_token, registry_http, registry_image
from components.registry_http import RegistryError, manifest_digest

DIGEST = "sha256:" + "c4" * 32
REPO = "azureml/azureml_abc"


class RegistryStandIn:
    def __init__(self, tags=None, refresh_token="acr-refresh", manifest_status=None):
        self.tags, self.refresh_token, self.manifest_status = tags or {}, refresh_token, manifest_status
        self.requests: list[tuple[str, str, dict, dict]] = []  # (method, path, headers, form)
        self.exchanged: list[dict] = []
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _record(self):
                length = int(self.headers.get("Content-Length") or 0)
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()} if length else {}
                url = urlsplit(self.path)
                form.update({k: v[0] for k, v in parse_qs(url.query).items()})
                stand_in.requests.append((self.command, url.path, dict(self.headers), form))
                return url.path, form

            def _send(self, status, body=b"", headers=None):
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def do_HEAD(self):
                path, _ = self._record()
                repo, tag = path.removeprefix("/v2/").split("/manifests/")
                if self.headers.get("Authorization") != f"Bearer pull-{repo}":
                    realm = f"http://{stand_in.server}/oauth2/token"
                    return self._send(401, headers={"WWW-Authenticate": f'Bearer realm="{realm}",service="{stand_in.server}"'})
                if stand_in.manifest_status:
                    return self._send(stand_in.manifest_status)
                if tag not in stand_in.tags.get(repo, {}):
                    return self._send(404)
                self._send(200, headers={"Docker-Content-Digest": stand_in.tags[repo][tag]})

            do_GET = None

            def do_POST(self):
                path, form = self._record()
                if path == "/oauth2/exchange":  # Entra access token -> refresh token, as ACR answers it
                    stand_in.exchanged.append(form)
                    return self._send(200, json.dumps({"refresh_token": stand_in.refresh_token}).encode())
                if form.get("grant_type") == "refresh_token" and form.get("refresh_token") == stand_in.refresh_token:
                    repo = form["scope"].split(":")[1]
                    return self._send(200, json.dumps({"access_token": f"pull-{repo}"}).encode())
                self._send(401, b'{"errors":[{"code":"UNAUTHORIZED"}]}')

        def anonymous(handler):  # GET /oauth2/token: an anonymous pull token, as public registries give
            _, form = handler._record()
            handler._send(200, json.dumps({"token": f"pull-{form['scope'].split(':')[1]}"}).encode())

        Handler.do_GET = anonymous
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server = f"127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def registry():
    stand_in = RegistryStandIn(tags={REPO: {"abc": DIGEST}})
    yield stand_in
    stand_in.close()


def test_a_tag_is_read_after_the_bearer_challenge_with_a_pull_token_for_that_repository(registry):
    assert manifest_digest(registry.server, REPO, "abc", "acr-refresh") == DIGEST
    (m1, p1, h1, _), (m2, p2, _, form), (m3, p3, h3, _) = registry.requests
    assert (m1, p1) == ("HEAD", f"/v2/{REPO}/manifests/abc") and "Authorization" not in h1
    assert (m2, p2) == ("POST", "/oauth2/token")
    assert form == {"grant_type": "refresh_token", "service": registry.server, "scope": f"repository:{REPO}:pull",
                    "refresh_token": "acr-refresh"}
    assert (m3, h3["Authorization"]) == ("HEAD", f"Bearer pull-{REPO}")
    # An index or manifest list first: a multi-platform tag gives the digest `docker push` printed.
    assert h3["Accept"].split(", ")[:2] == ["application/vnd.oci.image.index.v1+json",
                                            "application/vnd.docker.distribution.manifest.list.v2+json"]


def test_a_tag_the_registry_does_not_have_is_none(registry):
    assert manifest_digest(registry.server, REPO, "missing", "acr-refresh") is None


def test_a_refused_refresh_token_is_raised_not_taken_for_not_found(registry):
    with pytest.raises(RegistryError, match=r"token endpoint answered 401 for repository:azureml/azureml_abc:pull"):
        manifest_digest(registry.server, REPO, "abc", "someone-elses-token")


def test_other_manifest_errors_are_raised():
    registry = RegistryStandIn(manifest_status=500)
    try:
        with pytest.raises(RegistryError, match=rf"{registry.server}/{REPO}:abc: the registry answered 500"):
            manifest_digest(registry.server, REPO, "abc", "acr-refresh")
    finally:
        registry.close()


def test_a_public_image_is_read_with_an_anonymous_token(registry):
    assert manifest_digest(registry.server, REPO, "abc") == DIGEST
    assert [(m, p) for m, p, _, _ in registry.requests] == [
        ("HEAD", f"/v2/{REPO}/manifests/abc"), ("GET", "/oauth2/token"), ("HEAD", f"/v2/{REPO}/manifests/abc")]


def test_the_refresh_token_is_never_sent_to_a_realm_on_another_host(registry):
    challenge = 'Bearer realm="https://elsewhere.example/oauth2/token",service="x"'
    with pytest.raises(RegistryError, match="another host"):
        registry_http.pull_token(registry.server, challenge, REPO, "acr-refresh")


# ---------------------------------------------------------------- the exchange (Entra token -> ACR refresh token)


class Refusals:
    """The registry's /oauth2/exchange answering as a registry whose AcrPush for the deployer has not applied
    yet (401), or that refuses ARM-audience tokens (401 for good)."""

    def __init__(self, answers: dict):
        self.answers, self.calls = {k: list(v) for k, v in answers.items()}, []

    def __call__(self, login_server, tenant, token):
        self.calls.append(token)
        status = self.answers[token].pop(0) if self.answers[token] else 200
        if status == 200:
            return f"refresh-for-{token}"
        response = requests.Response()
        response.status_code = status
        raise requests.HTTPError(f"{status}", response=response)


def test_the_exchange_uses_the_registry_audience_first_and_waits_for_a_fresh_acrpush(monkeypatch):
    refusals = Refusals({"registry-token": [401, 401], "arm-token": [401, 401, 401]})
    monkeypatch.setattr(registry_http, "exchange_aad_token", refusals)
    slept = []
    assert registry_http.exchange_with_retry("r.azurecr.io", "tenant", ["registry-token", "arm-token"],
                                             sleep=slept.append) == "refresh-for-registry-token"
    assert refusals.calls == ["registry-token", "arm-token"] * 2 + ["registry-token"] and slept == [2, 4]


def test_a_token_refused_for_good_is_not_retried_and_a_lasting_refusal_is_named(monkeypatch):
    refusals = Refusals({"registry-token": [403] * 10, "arm-token": [401] * 10})
    monkeypatch.setattr(registry_http, "exchange_aad_token", refusals)
    with pytest.raises(RuntimeError, match=r"r.azurecr.io: the registry refused the deploying identity's Entra "
                                           r"tokens \(403, 401, 401, 401\); it needs AcrPush on the workspace registry, "
                                           r"AcrPull on a global one \("):
        registry_http.exchange_with_retry("r.azurecr.io", "tenant", ["registry-token", "arm-token"], attempts=3,
                                          sleep=lambda s: None)
    assert refusals.calls == ["registry-token", "arm-token", "arm-token", "arm-token"]


# ---------------------------------------------------------------- Entra tokens in the provider process


class TokenEndpoint:
    """A token endpoint on 127.0.0.1 (Entra's, through AZURE_AUTHORITY_HOST; a machine's identity endpoint, through
    ARM_MSI_ENDPOINT): records each request and answers it with `answer(request)` -> (status, body)."""

    def __init__(self, answer):
        self.requests: list[dict] = []  # path, Metadata header and the form and query fields of each request
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _handle(self):
                url, length = urlsplit(self.path), int(self.headers.get("Content-Length") or 0)
                fields = parse_qs(url.query) | parse_qs(self.rfile.read(length).decode() if length else "")
                request = {"path": url.path, "metadata": self.headers.get("Metadata"),
                           **{k: v[0] for k, v in fields.items()}}
                stand_in.requests.append(request)
                status, body = answer(request)
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _handle

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def token_for(field: str):
    return lambda request: (200, json.dumps({"access_token": f"token-for-{request[field]}"}).encode())


def test_ci_with_a_federated_token_file_asks_entra_with_a_client_assertion(tmp_path):
    entra = TokenEndpoint(token_for("scope"))
    try:
        (tmp_path / "assertion").write_text("github-oidc-jwt\n")
        env = {"ARM_CLIENT_ID": "ci-app", "ARM_TENANT_ID": "tenant-1", "AZURE_FEDERATED_TOKEN_FILE": str(tmp_path / "assertion"),
               "AZURE_AUTHORITY_HOST": entra.url}
        token = entra_token.access_token(entra_token.REGISTRY_RESOURCE, env)
    finally:
        entra.close()
    assert token == entra_token.EntraToken("token-for-https://containerregistry.azure.net/.default", "tenant-1")
    assert entra.requests == [{"path": "/tenant-1/oauth2/v2.0/token", "metadata": None,
                               "grant_type": "client_credentials", "client_id": "ci-app",
                               "scope": "https://containerregistry.azure.net/.default",
                               "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                               "client_assertion": "github-oidc-jwt"}]


def test_an_entra_refusal_that_is_not_json_is_named_with_its_status_not_a_parse_error():
    # A proxy or gateway in front of Entra answers in HTML; the refusal must still read as one.
    gateway = TokenEndpoint(lambda request: (502, b"<html>502 Bad Gateway</html>"))
    env = {"ARM_CLIENT_ID": "ci-app", "ARM_TENANT_ID": "tenant-1", "ARM_CLIENT_SECRET": "s3cret",
           "AZURE_AUTHORITY_HOST": gateway.url}
    try:
        with pytest.raises(entra_token.NoAzureLogin) as refused:
            entra_token.access_token(entra_token.ARM_RESOURCE, env)
    finally:
        gateway.close()
    assert str(refused.value) == "Entra ID refused a token for ci-app in tenant-1 (502): Bad Gateway"


def test_a_runner_with_a_managed_identity_asks_its_identity_endpoint_not_the_azure_cli(monkeypatch):
    # ARM_USE_MSI=true is how the azure-native provider is told to deploy as the machine's identity; the images
    # must be built and looked up as the same identity, on a runner that has no `az login`.
    monkeypatch.setattr(entra_token.subprocess, "run", lambda *_, **__: pytest.fail("the Azure CLI was asked"))
    endpoint = TokenEndpoint(token_for("resource"))  # stands in for Azure's instance metadata service
    try:
        env = {"ARM_USE_MSI": "true", "ARM_MSI_ENDPOINT": f"{endpoint.url}/metadata/identity/oauth2/token",
               "ARM_CLIENT_ID": "runner-identity", "ARM_TENANT_ID": "tenant-3"}
        token = entra_token.access_token(entra_token.REGISTRY_RESOURCE, env)
    finally:
        endpoint.close()
    assert token == entra_token.EntraToken("token-for-https://containerregistry.azure.net", "tenant-3")
    assert endpoint.requests == [{"path": "/metadata/identity/oauth2/token", "metadata": "true",
                                  "api-version": "2018-02-01", "resource": "https://containerregistry.azure.net",
                                  "client_id": "runner-identity"}]


def jwt(exp: float) -> str:
    """An access token's shape (header.payload.signature) with the `exp` claim Entra puts in it."""
    encode = lambda part: base64.urlsafe_b64encode(json.dumps(part).encode()).decode().rstrip("=")  # noqa: E731
    return f"{encode({'typ': 'JWT'})}.{encode({'exp': exp, 'aud': 'https://management.azure.com/'})}.signature"


def test_an_hour_of_polls_asks_for_a_token_only_when_the_last_is_about_to_expire(monkeypatch):
    now, issued = [1_800_000_000.0], []

    def access_token(resource, env=None):
        issued.append(now[0])
        return entra_token.EntraToken(jwt(now[0] + 3600), "tenant-1")  # Entra's usual hour

    monkeypatch.setattr(entra_token, "access_token", access_token)
    current = entra_token.renewing(entra_token.ARM_RESOURCE, clock=lambda: now[0])
    start = now[0]
    for _ in range(360):  # an ACR Tasks run polled every 10 s for an hour
        now[0] += 10
        assert entra_token.expiry(current().token) - now[0] >= entra_token.RENEW_MARGIN
    assert [when - start for when in issued] == [10, 3320]  # at the start; at the first poll under 5 minutes left


def test_a_token_whose_expiry_cannot_be_read_is_asked_for_again_each_time(monkeypatch):
    issued = []
    monkeypatch.setattr(entra_token, "access_token",
                        lambda resource, env=None: issued.append(1) or entra_token.EntraToken("opaque", None))
    current = entra_token.renewing(entra_token.ARM_RESOURCE)
    assert [current().token for _ in range(3)] == ["opaque"] * 3 and len(issued) == 3


@pytest.fixture(autouse=True)
def no_shared_tokens(monkeypatch):
    """Each test starts with no token held from another (the provider process holds them for a whole `up`)."""
    monkeypatch.setattr(entra_token, "_SHARED", {})


def test_every_image_of_an_up_shares_the_deployers_entra_tokens(monkeypatch):
    issued, exchanged = [], []
    monkeypatch.setattr(entra_token, "access_token", lambda resource, env=None: issued.append(resource) or
                        entra_token.EntraToken(jwt(time.time() + 3600), "tenant-1"))
    monkeypatch.setattr(registry_image.registry_http, "exchange_with_retry",
                        lambda server, tenant, tokens: exchanged.append((server, tenant, len(tokens))) or "refresh")
    for server in ("mlwdevacr.azurecr.io", "mlwdevacr.azurecr.io", "contosoglobal.azurecr.io"):  # three images
        assert registry_image.refresh_token(server) == "refresh"
    assert issued == [entra_token.REGISTRY_RESOURCE, entra_token.ARM_RESOURCE]
    assert [server for server, _, _ in exchanged] == ["mlwdevacr.azurecr.io"] * 2 + ["contosoglobal.azurecr.io"]


def test_an_acr_task_build_reuses_its_arm_token_across_calls(monkeypatch):
    issued, used = [], []
    monkeypatch.setattr(entra_token, "access_token", lambda resource, env=None: issued.append(resource) or
                        entra_token.EntraToken(jwt(time.time() + 3600), "tenant-1"))
    monkeypatch.setattr(registry_image.acr_tasks, "build",
                        lambda tasks, image, context: used.extend(tasks._token() for _ in range(20)))
    registry_image.build_with_acr_task({"registry_id": "/subscriptions/s/resourceGroups/rg/providers/"
                                        "Microsoft.ContainerRegistry/registries/r", "server": "r.azurecr.io",
                                        "repository": REPO, "tag": "abc"}, b"context", "acr-refresh")
    assert issued == [entra_token.ARM_RESOURCE] and len(set(used)) == 1 and len(used) == 20


def test_without_ci_variables_the_azure_cli_session_is_asked(monkeypatch):
    asked = []

    class Done:
        returncode, stderr = 0, ""
        stdout = json.dumps({"accessToken": "cli-token", "tenant": "tenant-2"})

    monkeypatch.setattr(entra_token.subprocess, "run", lambda command, **_: asked.append(command) or Done())
    assert entra_token.access_token(entra_token.ARM_RESOURCE, {}) == entra_token.EntraToken("cli-token", "tenant-2")
    assert asked == [["az", "account", "get-access-token", "--resource", "https://management.azure.com/",
                      "--output", "json"]]


def test_no_login_at_all_says_what_to_do(monkeypatch):
    def missing(*_, **__):
        raise FileNotFoundError("az")

    monkeypatch.setattr(entra_token.subprocess, "run", missing)
    with pytest.raises(entra_token.NoAzureLogin, match=r"\(az is not on PATH\): run `az login`, or set ARM_CLIENT_ID"):
        entra_token.access_token(entra_token.ARM_RESOURCE, {})


# ---------------------------------------------------------------- the RegistryImage provider, end to end


def test_the_provider_finds_a_tag_through_the_exchange_and_the_manifest_api_and_builds_nothing(registry, monkeypatch):
    """The provider's create as `pulumi up` runs it, against the stand-in registry; only Entra is replaced."""
    monkeypatch.setattr(entra_token, "access_token", lambda resource, env=None: entra_token.EntraToken(
        f"entra-{resource}", "tenant-1"))
    monkeypatch.setattr(registry_image, "BUILDERS", {"acr-task": lambda *a: pytest.fail("nothing to build")})
    props = {"server": registry.server, "repository": REPO, "tag": "abc", "builder": "acr-task",
             "registry_id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/r",
             "context_path": "/nonexistent.tar.gz", "global_server": None}
    created = registry_image.RegistryImageProvider().create(props)
    assert created.id == f"{registry.server}/{REPO}:abc"
    assert (created.outs["source"], created.outs["digest"], created.outs["image_ref"]) == (
        "workspace", DIGEST, f"{registry.server}/{REPO}@{DIGEST}")
    # The registry-audience token first (ARM's the fallback), and the refresh token only in memory.
    assert registry.exchanged == [{"grant_type": "access_token", "service": registry.server, "tenant": "tenant-1",
                                   "access_token": "entra-https://containerregistry.azure.net"}]
    assert "acr-refresh" not in json.dumps(created.outs)

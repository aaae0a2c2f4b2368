"""A registry's own HTTP API (Docker Registry v2, as ACR, quay.io and nvcr.io serve it): tag -> digest.

No Docker daemon and no Pulumi provider: pulumi-docker's provider dials a daemon in Configure even for
`getRegistryImage` (pulumi-docker #1106), which made `pulumi preview` fail on machines without Docker.

Lookup: `HEAD /v2/<repository>/manifests/<tag>` with the manifest media types in Accept (an OCI index or a
Docker manifest list first, so a multi-platform tag gives the index's digest, as `docker push` prints it),
the digest from `Docker-Content-Digest`. A 401 carries a `WWW-Authenticate: Bearer realm=...` challenge:
with an ACR refresh token the realm (`https://<registry>/oauth2/token`) trades it for a pull token for
that one repository; without one (public registries) the realm gives an anonymous pull token. A 404
(MANIFEST_UNKNOWN, NAME_UNKNOWN) means "not there"; anything else is raised, since rebuilding on a 401
would hide a broken identity.

ACR refresh tokens: an Entra ID access token is exchanged at `/oauth2/exchange`
(https://azure.github.io/acr/AAD-OAuth.html), the same exchange `az acr login --expose-token` makes.

Stdlib and requests only: the RegistryImage provider process imports this module.
"""
from __future__ import annotations

import hashlib
import re
import time
from typing import Callable, Optional
from urllib.parse import urlsplit

import requests

MANIFEST_TYPES = ", ".join((
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
))
TIMEOUT = 30
EXCHANGE_ATTEMPTS = 6  # 2 + 4 + 8 + 16 + 30 s between rounds: a fresh AcrPush has time to apply
RETRIED_STATUS = {401, 429, 500, 502, 503, 504}
_CHALLENGE = re.compile(r'(\w+)="([^"]*)"')


class RegistryError(RuntimeError):
    """The registry answered something other than a manifest or "not found"."""


def registry_url(server: str) -> str:
    """https, except for a registry on the loopback address (as Docker treats 127.0.0.0/8: insecure)."""
    host = server.split(":", 1)[0]
    return f"http://{server}" if host in ("127.0.0.1", "localhost") else f"https://{server}"


def manifest_digest(server: str, repository: str, tag: str, refresh_token: Optional[str] = None) -> Optional[str]:
    """`sha256:...` of `server/repository:tag`, or None when the registry does not have that tag."""
    url = f"{registry_url(server)}/v2/{repository}/manifests/{tag}"
    headers = {"Accept": MANIFEST_TYPES}
    response = requests.head(url, headers=headers, timeout=TIMEOUT)
    if response.status_code == 401:
        challenge = response.headers.get("WWW-Authenticate", "")
        headers["Authorization"] = f"Bearer {pull_token(server, challenge, repository, refresh_token)}"
        response = requests.head(url, headers=headers, timeout=TIMEOUT)
    if response.status_code == 404:
        return None
    if response.status_code != 200:
        raise RegistryError(f"{server}/{repository}:{tag}: the registry answered {response.status_code} "
                            "to a manifest request")
    digest = response.headers.get("Docker-Content-Digest")
    if digest:
        return digest
    # A registry that leaves the header out of HEAD answers: the digest of the manifest's bytes.
    body = requests.get(url, headers=headers, timeout=TIMEOUT)
    body.raise_for_status()
    return body.headers.get("Docker-Content-Digest") or "sha256:" + hashlib.sha256(body.content).hexdigest()


def pull_token(server: str, challenge: str, repository: str, refresh_token: Optional[str]) -> str:
    """A bearer token for pulling `repository`, from the realm the registry's 401 challenge names."""
    if not challenge.lower().startswith("bearer "):
        raise RegistryError(f"{server}: the registry asked for {challenge.split(' ', 1)[0] or 'no'} "
                            "authentication; only bearer tokens are supported")
    params = dict(_CHALLENGE.findall(challenge))
    realm, service = params.get("realm", ""), params.get("service", server)
    scope = f"repository:{repository}:pull"
    if refresh_token is not None:
        if urlsplit(realm).netloc != server:  # the refresh token is a credential for this registry only
            raise RegistryError(f"{server}: the registry's token realm {realm!r} is another host; "
                                "not sending it the registry credential")
        response = requests.post(realm, timeout=TIMEOUT, data={
            "grant_type": "refresh_token", "service": service, "scope": scope, "refresh_token": refresh_token})
    else:
        response = requests.get(realm, params={"service": service, "scope": scope}, timeout=TIMEOUT)
    if response.status_code != 200:
        raise RegistryError(f"{server}: the registry's token endpoint answered {response.status_code} for "
                            f"{scope}")
    answer = response.json()
    return answer.get("access_token") or answer["token"]


# ---------------------------------------------------------------- Entra ID token -> ACR refresh token


def exchange_aad_token(login_server: str, tenant: Optional[str], aad_token: str) -> str:
    """Entra ID access token -> ACR refresh token (POST /oauth2/exchange, grant_type=access_token)."""
    data = {"grant_type": "access_token", "service": login_server, "access_token": aad_token}
    if tenant:
        data["tenant"] = tenant
    response = requests.post(f"{registry_url(login_server)}/oauth2/exchange", timeout=TIMEOUT, data=data)
    response.raise_for_status()
    return response.json()["refresh_token"]


def exchange_with_retry(login_server: str, tenant: Optional[str], tokens: list[str],
                        attempts: int = EXCHANGE_ATTEMPTS, sleep: Callable[[float], None] = time.sleep) -> str:
    """The exchange with each token in turn, registry audience first, each tried `attempts` times.

    A registry can refuse ARM-audience tokens (`azureADAuthenticationAsArmPolicy` disabled, as hardened
    subscriptions set it), so the registry-audience token goes first and ARM's is the fallback. On a first
    `pulumi up` the registry and the deployer's AcrPush are minutes old: a 401 then only means "not yet".
    """
    delay, failures, live = 2.0, [], list(tokens)
    for attempt in range(attempts):
        for token in list(live):
            try:
                return exchange_aad_token(login_server, tenant, token)
            except (requests.HTTPError, requests.ConnectionError, requests.Timeout) as err:
                status = getattr(getattr(err, "response", None), "status_code", None)
                failures.append(str(status or type(err).__name__))
                if status is not None and status not in RETRIED_STATUS:
                    live.remove(token)  # refused for good (400 malformed, 403): waiting will not change it
        if not live:
            break
        if attempt + 1 < attempts:
            sleep(delay)
            delay = min(delay * 2, 30.0)
    raise RuntimeError(f"{login_server}: the registry refused the deploying identity's Entra tokens "
                       f"({', '.join(failures)}); it needs AcrPush on the workspace registry, AcrPull on a global "
                       f"one (a new role assignment can take minutes to apply: run `pulumi up` again)")

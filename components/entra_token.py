"""Entra ID access tokens for the identity that runs `pulumi up`, obtained where they are used.

The RegistryImage provider runs in a process of its own (Pulumi's dynamic provider host), which cannot
see the azure-native provider's configuration, and nothing it is given may hold a credential (its inputs
and outputs are stored in the stack's state). So it asks Entra itself, the way the azure-native provider
and the Azure CLI do, from what the deploying machine already has:
- CI with OIDC (`ARM_USE_OIDC=true`, as the pull-request workflow sets): a federated assertion from
  `ARM_OIDC_TOKEN`, a token file (`ARM_OIDC_TOKEN_FILE_PATH`, `AZURE_FEDERATED_TOKEN_FILE`), or GitHub's
  `ACTIONS_ID_TOKEN_REQUEST_URL`/`_TOKEN`, exchanged as a client assertion for `ARM_CLIENT_ID` or
  `AZURE_CLIENT_ID` in `ARM_TENANT_ID` or `AZURE_TENANT_ID`: a fresh assertion per token, so a long build
  cannot outlive it;
- a service principal secret (`ARM_CLIENT_SECRET` or `AZURE_CLIENT_SECRET`) with that client and tenant;
- a managed identity (`ARM_USE_MSI=true`, as on a self-hosted runner in Azure): the machine's identity
  endpoint (`ARM_MSI_ENDPOINT`, else the instance metadata service), for `ARM_CLIENT_ID` when set (a
  user-assigned identity);
- otherwise the Azure CLI session (`az account get-access-token`), as on a laptop after `az login`.
Stdlib and requests only (azure-identity is not among the program's requirements).
"""
from __future__ import annotations

import base64
import binascii
import json
import os
import subprocess
import time
from dataclasses import dataclass
from typing import Callable, Mapping, Optional

import requests

ARM_RESOURCE = "https://management.azure.com/"
REGISTRY_RESOURCE = "https://containerregistry.azure.net"
ASSERTION_AUDIENCE = "api://AzureADTokenExchange"
IMDS_TOKEN_URL = "http://169.254.169.254/metadata/identity/oauth2/token"  # Azure's instance metadata service
IMDS_API_VERSION = "2018-02-01"
RENEW_MARGIN = 300  # seconds before a token's expiry at which `renewing` asks for a new one
TIMEOUT = 30


class NoAzureLogin(RuntimeError):
    """No way to get an Entra token on this machine."""


@dataclass(frozen=True)
class EntraToken:
    token: str
    tenant: Optional[str]


def access_token(resource: str, env: Optional[Mapping[str, str]] = None) -> EntraToken:
    """An access token for `resource` (ARM's, or the registry audience) for the deploying identity."""
    env = os.environ if env is None else env
    client_id = env.get("ARM_CLIENT_ID") or env.get("AZURE_CLIENT_ID")
    tenant = env.get("ARM_TENANT_ID") or env.get("AZURE_TENANT_ID")
    if client_id and tenant:
        if (assertion := federated_assertion(env)) is not None:
            return client_credentials(env, tenant, client_id, resource, {
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": assertion})
        if secret := env.get("ARM_CLIENT_SECRET") or env.get("AZURE_CLIENT_SECRET"):
            return client_credentials(env, tenant, client_id, resource, {"client_secret": secret})
    if env.get("ARM_USE_MSI", "").lower() == "true":  # as the azure-native provider reads it
        return managed_identity_token(env, resource, client_id, tenant)
    return azure_cli_token(resource, tenant)


def renewing(resource: str, clock: Callable[[], float] = time.time) -> Callable[[], EntraToken]:
    """A function giving a current token for `resource`: the last one while it has RENEW_MARGIN seconds left,
    else a new one. An ACR Tasks run is polled every few seconds for up to an hour; asking Entra (and, in CI,
    the OIDC issuer) at each poll would make hundreds of token requests for what one or two tokens cover."""
    held: list[tuple[EntraToken, float]] = []

    def current() -> EntraToken:
        if not held or held[0][1] - clock() < RENEW_MARGIN:
            token = access_token(resource)
            held[:] = [(token, expiry(token.token))]
        return held[0][0]
    return current


_SHARED: dict[str, Callable[[], EntraToken]] = {}


def shared_token(resource: str) -> EntraToken:
    """A current token for `resource`, held for every image of one `pulumi up` (one provider process serves them
    all) rather than asked for by each (an az subprocess, or an Entra request, each time)."""
    return _SHARED.setdefault(resource, renewing(resource))()


def expiry(token: str) -> float:
    """The `exp` claim of a JWT access token (read, not verified: only to know when to ask again); 0 if unreadable."""
    try:
        payload = token.split(".")[1]
        return float(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["exp"])
    except (IndexError, KeyError, TypeError, ValueError, binascii.Error):
        return 0.0


def federated_assertion(env: Mapping[str, str]) -> Optional[str]:
    """A workload identity assertion (a JWT from the CI's OIDC issuer), or None when there is none."""
    if env.get("ARM_OIDC_TOKEN"):
        return env["ARM_OIDC_TOKEN"]
    for variable in ("ARM_OIDC_TOKEN_FILE_PATH", "AZURE_FEDERATED_TOKEN_FILE"):
        if env.get(variable):
            with open(env[variable], encoding="utf-8") as f:
                return f.read().strip()
    url = env.get("ARM_OIDC_REQUEST_URL") or env.get("ACTIONS_ID_TOKEN_REQUEST_URL")
    bearer = env.get("ARM_OIDC_REQUEST_TOKEN") or env.get("ACTIONS_ID_TOKEN_REQUEST_TOKEN")
    if url and bearer and env.get("ARM_USE_OIDC", "").lower() == "true":
        response = requests.get(url, params={"audience": ASSERTION_AUDIENCE}, timeout=TIMEOUT,
                                headers={"Authorization": f"Bearer {bearer}"})
        response.raise_for_status()
        return response.json()["value"]
    return None


def client_credentials(env: Mapping[str, str], tenant: str, client_id: str, resource: str,
                       credential: dict) -> EntraToken:
    authority = (env.get("AZURE_AUTHORITY_HOST") or "https://login.microsoftonline.com").rstrip("/")
    response = requests.post(f"{authority}/{tenant}/oauth2/v2.0/token", timeout=TIMEOUT, data={
        "grant_type": "client_credentials", "client_id": client_id,
        "scope": f"{resource.rstrip('/')}/.default", **credential})
    if response.status_code != 200:
        # Entra's error description names the cause (AADSTS code) and never echoes the credential.
        raise NoAzureLogin(f"Entra ID refused a token for {client_id} in {tenant} ({response.status_code}): "
                           f"{_error_description(response)}")
    return EntraToken(response.json()["access_token"], tenant)


def managed_identity_token(env: Mapping[str, str], resource: str, client_id: Optional[str],
                           tenant: Optional[str]) -> EntraToken:
    """A token for the machine's managed identity (`client_id`: a user-assigned one) from its identity endpoint."""
    params = {"api-version": IMDS_API_VERSION, "resource": resource, **({"client_id": client_id} if client_id else {})}
    try:
        response = requests.get(env.get("ARM_MSI_ENDPOINT") or IMDS_TOKEN_URL, params=params, timeout=TIMEOUT,
                                headers={"Metadata": "true"})
    except requests.RequestException as err:
        raise NoAzureLogin(f"ARM_USE_MSI is true, but no managed identity endpoint answers ({type(err).__name__}); "
                           "run in Azure with an identity, or set ARM_MSI_ENDPOINT") from None
    if response.status_code != 200:
        raise NoAzureLogin(f"the managed identity endpoint refused a token for {resource} ({response.status_code}): "
                           f"{_error_description(response)}")
    return EntraToken(response.json()["access_token"], tenant)


def _error_description(response: requests.Response) -> str:
    try:
        return response.json().get("error_description") or response.reason or ""
    except ValueError:
        return response.reason or ""


def azure_cli_token(resource: str, tenant: Optional[str] = None) -> EntraToken:
    command = ["az", "account", "get-access-token", "--resource", resource, "--output", "json"]
    if tenant:
        command += ["--tenant", tenant]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    except FileNotFoundError:
        done = None
    if done is None or done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["failed"])[-1] if done else "az is not on PATH"
        raise NoAzureLogin(f"no Azure login to build and look up images with ({reason}): run `az login`, or set "
                           "ARM_CLIENT_ID and ARM_TENANT_ID with ARM_USE_OIDC=true (CI) or ARM_CLIENT_SECRET, or "
                           "ARM_USE_MSI=true (a managed identity)")
    answer = json.loads(done.stdout)
    return EntraToken(answer["accessToken"], answer.get("tenant") or tenant)

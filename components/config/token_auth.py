"""`tokenAuth:` of a token-auth service or endpoint: trust an OpenID Connect issuer (Microsoft Entra ID or any
other) instead of the stack's own signing key.

The router finds the issuer's keys through `<issuer>/.well-known/openid-configuration` and accepts only
tokens whose `iss` is the issuer exactly as written here. Entra writes `iss` in two forms, chosen by the API's
app registration (`accessTokenAcceptedVersion`), not by the client: 2 gives
`https://login.microsoftonline.com/<tenant>/v2.0` (what `tenantId` stands for), null or 1 gives
`https://sts.windows.net/<tenant>/`; name that one as `issuer`. Multi-tenant authorities (`common`,
`organizations`, `consumers`) publish a `{tenantid}` template instead of an issuer, which cannot be checked
exactly, so they are refused: one tenant per service.
"""
from __future__ import annotations

import re
from typing import Literal, Optional, Union

from pydantic import Field, model_validator

from components.config_base import ConfigModel as _Model

ENTRA_V2_ISSUER = "https://login.microsoftonline.com/{tenant}/v2.0"
ENTRA_MULTI_TENANT = ("common", "organizations", "consumers")
GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
HTTPS_URL = re.compile(r"^https://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[^?#\s{}]*)?$")
ENTRA_AUTHORITY = re.compile(r"^https://(login\.microsoftonline\.(com|us)|login\.chinacloudapi\.cn|"
                             r"sts\.windows\.net|sts\.chinacloudapi\.cn)/([^/]+)")
MAX_AUDIENCES = 10
Algorithm = Literal["RS256", "RS384", "RS512", "ES256", "ES384", "PS256", "EdDSA"]  # the router's allow-list


class TokenAuth(_Model):
    """The OIDC issuer whose tokens a service accepts, and the audience they must be for."""

    issuer: Optional[str] = None
    tenant_id: Optional[str] = None  # Microsoft Entra ID: issuer https://login.microsoftonline.com/<id>/v2.0
    audience: Union[str, list[str]]  # `aud` must be this (or one of these)
    algorithms: list[Algorithm] = Field(["RS256"], min_length=1)

    @model_validator(mode="after")
    def _issuer_rules(self) -> "TokenAuth":
        if (self.issuer is None) == (self.tenant_id is None):
            raise ValueError("issuer: set issuer, or tenantId for Microsoft Entra ID (one of them, not both)")
        if self.tenant_id is not None:
            _check_tenant(self.tenant_id)
        else:
            _check_issuer(self.issuer)
        _check_audiences(self.audiences)
        return self

    @property
    def issuer_url(self) -> str:
        return self.issuer if self.issuer is not None else ENTRA_V2_ISSUER.format(tenant=self.tenant_id)

    @property
    def discovery_url(self) -> str:
        # OpenID Connect Discovery 1.0, section 4: a trailing `/` of the issuer is dropped before the suffix.
        return self.issuer_url.rstrip("/") + "/.well-known/openid-configuration"

    @property
    def audiences(self) -> list[str]:
        return [self.audience] if isinstance(self.audience, str) else list(self.audience)

    @property
    def is_entra(self) -> bool:
        return ENTRA_AUTHORITY.match(self.issuer_url) is not None


def _check_tenant(tenant: str) -> None:
    if tenant.strip().lower() in ENTRA_MULTI_TENANT:
        raise ValueError(f"tenantId: {tenant!r} is a multi-tenant authority, whose tokens carry each caller's own "
                         f"tenant as issuer; give one tenant's ID (single tenant only)")
    if not GUID.match(tenant):
        raise ValueError(f"tenantId: {tenant!r} must be the tenant's ID, a GUID (tokens name the tenant by ID, "
                         f"never by domain)")


def _check_issuer(issuer: str) -> None:
    if issuer != issuer.strip():
        raise ValueError(f"issuer: {issuer!r} has leading or trailing whitespace; tokens' iss is compared exactly")
    if "{" in issuer:
        raise ValueError(f"issuer: {issuer!r} is a multi-tenant template, not an issuer; name one tenant "
                         f"(single tenant only)")
    if not HTTPS_URL.match(issuer):
        raise ValueError(f"issuer: {issuer!r} must be an https:// URL without query, fragment or spaces "
                         f"(as the identity provider writes it in tokens' iss)")
    entra = ENTRA_AUTHORITY.match(issuer)
    if entra and entra.group(3).lower() in ENTRA_MULTI_TENANT:
        raise ValueError(f"issuer: {issuer!r} is a multi-tenant authority, whose tokens carry each caller's own "
                         f"tenant as issuer; name one tenant (single tenant only)")


def _check_audiences(audiences: list[str]) -> None:
    if not audiences:
        raise ValueError("audience: at least one (the API's application ID URI or client ID)")
    if len(audiences) > MAX_AUDIENCES:
        raise ValueError(f"audience: at most {MAX_AUDIENCES}")
    for value in audiences:
        if not value or value != value.strip():
            raise ValueError(f"audience: {value!r} must be non-empty, without leading or trailing whitespace")
    if len(set(audiences)) != len(audiences):
        raise ValueError("audience: listed twice")

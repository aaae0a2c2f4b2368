"""RouterConfig: the router's only input (a JSON or YAML document).

The Pulumi program renders it into a ConfigMap and the local deployment writes it to a file; both
produce camelCase keys. Unknown keys are rejected so a typo never silently falls back to a default.
Defaults are Azure ML v1's (AksWebservice.deploy_configuration and azureml-fe).
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

MAX_BODY_BYTES_DEFAULT = 100 * 1024 * 1024  # v1's 100 MB request payload limit
MAX_ENDPOINT_VERSIONS = 6
NAME_PATTERN = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"  # v1's service and version name rule


class Model(BaseModel):
    """Base for every config section: camelCase keys, unknown keys rejected, immutable."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid",
                              frozen=True)


# ---- auth -------------------------------------------------------------------------------------


class TokenAuth(Model):
    """JWT validation (and, with signingKeyFile, minting via `python -m router token`)."""

    issuer: str
    audience: str | Annotated[list[str], Field(min_length=1)]  # a list: `aud` must be one of them
    algorithms: list[Literal["RS256", "RS384", "RS512", "ES256", "ES384", "PS256", "EdDSA"]] = ["RS256"]
    jwks_url: str | None = None
    # OIDC: the issuer's discovery document; its `issuer` must be ours and its `jwks_uri` gives the keys
    discovery_url: str | None = None
    ca_file: Path | None = None  # PEM CAs trusted for discovery and JWKS fetches instead of the system's
    jwks_cache_seconds: float = Field(300, gt=0)
    jwks_refetch_seconds: float = Field(10, ge=1)  # an unknown `kid` refetches at most this often
    fetch_timeout_seconds: float = Field(5, gt=0, le=30)  # each discovery + JWKS fetch, all in
    public_key_files: list[Path] = []
    signing_key_file: Path | None = None  # private key for minting tokens without a cloud IdP
    key_id: str | None = None  # `kid` put in minted tokens
    lifetime_seconds: int = Field(3600, gt=0)
    leeway_seconds: float = Field(30, ge=0, le=300)
    max_token_bytes: int = Field(8192, gt=0)  # checked before any decoding

    @model_validator(mode="after")
    def _has_verification_keys(self) -> "TokenAuth":
        if not (self.jwks_url or self.discovery_url or self.public_key_files or self.signing_key_file):
            raise ValueError("token auth needs discoveryUrl, jwksUrl, publicKeyFiles or signingKeyFile")
        if self.discovery_url is not None:
            _check_discovery(self)
        return self


def _check_discovery(token: TokenAuth) -> None:
    """An OIDC issuer's keys are the only ones trusted (no mixing with local keys), fetched over HTTPS only."""
    if not re.match(r"^https://[^/?#\s]+(/[^?#\s]*)?$", token.discovery_url):
        raise ValueError(f"token.discoveryUrl {token.discovery_url!r} must be an https:// URL")
    if token.jwks_url or token.public_key_files or token.signing_key_file:
        raise ValueError("token.discoveryUrl: the issuer's published keys are the only ones trusted; "
                         "remove jwksUrl, publicKeyFiles and signingKeyFile")


class AuthConfig(Model):
    """`key`: primary and secondary keys; `token`: JWT; `none`: open (v1's auth_enabled=False)."""

    mode: Literal["key", "token", "none"] = "key"
    key_files: list[Path] = Field(default=[], max_length=2)  # primary, secondary; re-read on change
    key_secret_labels: dict[str, str] = {}  # kubernetes: Secrets with these labels hold the keys
    token: TokenAuth | None = None

    @model_validator(mode="after")
    def _mode_has_its_settings(self) -> "AuthConfig":
        if self.mode == "key" and not (self.key_files or self.key_secret_labels):
            raise ValueError("auth.mode 'key' needs keyFiles or keySecretLabels")
        if self.mode == "token" and self.token is None:
            raise ValueError("auth.mode 'token' needs auth.token")
        return self


# ---- backends ---------------------------------------------------------------------------------


class StaticBackend(Model):
    """Fixed replica URLs (tests, benchmarks, models run elsewhere). Cannot scale."""

    kind: Literal["static"]
    urls: list[str] = Field(min_length=1)


class LocalBackend(Model):
    """Azure ML inference server processes on 127.0.0.1, started and stopped by the router."""

    kind: Literal["local"]
    entry_script: Path
    model_dir: Path | None = None
    # v1's app root (azureml-models/ lives there) and the source folder put on sys.path; default: the
    # entry script's folder for both.
    app_root: Path | None = None
    source_directory: Path | None = None
    python: str | None = None  # interpreter that has azureml-inference-server-http; default: ours
    base_port: int = Field(5001, gt=0, lt=65536)  # replica i listens on basePort + i
    replicas: int = Field(1, ge=0)  # initial (or, without autoscale, fixed) replica count
    start_timeout_seconds: float = Field(60, gt=0)
    drain_timeout_seconds: float = Field(30, ge=0)
    env: dict[str, str] = {}
    # Each replica's output goes to <logDir>/replica-<port>.log (a pod's log, for `logs`); default: ours.
    log_dir: Path | None = None


class KubernetesBackend(Model):
    """Pods of a Deployment: replicas from its EndpointSlices, scaling through its scale subresource."""

    kind: Literal["kubernetes"]
    namespace: str
    service: str  # the model's Service; its EndpointSlices carry kubernetes.io/service-name=<service>
    deployment: str
    port: int = Field(5001, gt=0, lt=65536)
    scheme: Literal["http", "https"] = "http"


Backend = Annotated[Union[StaticBackend, LocalBackend, KubernetesBackend], Field(discriminator="kind")]


# ---- service ----------------------------------------------------------------------------------


class RequestLimits(Model):
    max_concurrent_per_replica: int = Field(1, gt=0)  # v1 replica_max_concurrent_requests
    max_queue_wait_ms: int = Field(500, gt=0)  # v1 max_request_wait_time, then 503
    scoring_timeout_ms: int = Field(60000, gt=0)  # v1 scoring_timeout_ms, then 504
    # How long a replica itself may keep computing (its SCORING_TIMEOUT_MS). After a 504 the slot stays
    # taken until the replica answers or this much time has passed since dispatch. Default: scoringTimeoutMs.
    replica_timeout_ms: int | None = Field(None, gt=0)
    max_body_bytes: int = Field(MAX_BODY_BYTES_DEFAULT, gt=0)  # then 413


class Autoscale(Model):
    enabled: bool = True
    min_replicas: int = Field(1, gt=0)
    max_replicas: int = Field(10, gt=0)
    target_utilization: float = Field(70, gt=0, le=100)  # percent
    refresh_seconds: float = Field(1, gt=0)
    stable_window_seconds: float = Field(60, ge=0)  # scale down only after this long below target

    @model_validator(mode="after")
    def _min_not_above_max(self) -> "Autoscale":
        if self.min_replicas > self.max_replicas:
            raise ValueError("autoscale.minReplicas must be <= autoscale.maxReplicas")
        return self


class ServiceConfig(Model):
    auth: AuthConfig  # required: an open service must say `mode: none` (v1's default was key auth)
    backend: Backend
    requests: RequestLimits = RequestLimits()
    autoscale: Autoscale = Autoscale()
    # Each request is recorded to Application Insights (router/telemetry.py; the connection string is the
    # APPLICATIONINSIGHTS_CONNECTION_STRING environment variable, never this file).
    app_insights: bool = False

    @model_validator(mode="after")
    def _static_cannot_scale(self) -> "ServiceConfig":
        if self.backend.kind == "static" and self.autoscale.enabled:
            raise ValueError("a static backend cannot scale: set autoscale.enabled to false")
        return self


# ---- endpoint ---------------------------------------------------------------------------------


class EndpointVersion(Model):
    service: str  # a key of `services`
    traffic_percentile: float = Field(0, ge=0, le=100)
    role: Literal["control", "treatment"] = "treatment"


class EndpointConfig(Model):
    """v1 AksEndpoint: up to 6 versions; the default one also gets the unassigned share."""

    auth: AuthConfig  # required, like a service's
    versions: dict[str, EndpointVersion] = Field(min_length=1, max_length=MAX_ENDPOINT_VERSIONS)
    default_version: str | None = None  # v1: the first version unless one is marked default

    @model_validator(mode="after")
    def _versions_are_consistent(self) -> "EndpointConfig":
        for name in self.versions:
            # Short names like v1 are fine: each version's service carries the full name rule.
            if not re.match(NAME_PATTERN, name):
                raise ValueError(f"endpoint version name {name!r} must match {NAME_PATTERN}")
        if self.default_version is not None and self.default_version not in self.versions:
            raise ValueError(f"defaultVersion {self.default_version!r} is not one of the versions")
        if sum(v.traffic_percentile for v in self.versions.values()) > 100:
            raise ValueError("the versions' trafficPercentile values add up to more than 100")
        if sum(v.role == "control" for v in self.versions.values()) > 1:
            raise ValueError("at most one version may have role 'control'")
        return self

    @property
    def default(self) -> str:
        return self.default_version or next(iter(self.versions))

    def traffic_shares(self) -> dict[str, float]:
        """Percent of requests per version; the default version gets its own share plus the rest."""
        shares = {name: v.traffic_percentile for name, v in self.versions.items()}
        shares[self.default] += 100 - sum(shares.values())
        return shares


# ---- top level --------------------------------------------------------------------------------


class ClusterOptions(Model):
    """Where the router itself runs in Kubernetes (leader election, peers, key Secrets)."""

    namespace: str  # the router's namespace: its Lease, its headless Service and key Secrets live here
    lease_name: str = "router-leader"
    peer_service: str = "router-peers"  # headless Service selecting the router pods
    lease_seconds: float = Field(15, gt=0)
    api_server: str | None = None  # default: https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT
    token_file: Path = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")
    ca_file: Path | None = Path("/var/run/secrets/kubernetes.io/serviceaccount/ca.crt")


class TlsOptions(Model):
    """TLS terminated by the router on its own port; the files are re-read when they change (renewals)."""
    cert_file: Path  # PEM chain
    key_file: Path  # PEM private key
    port: int = Field(8443, gt=0, lt=65536)


class AcmeOptions(Model):
    """With TLS from an ACME CA (cert-manager, HTTP-01): a plain-HTTP listener on `port` (the load balancer's
    port 80) forwards `/.well-known/acme-challenge/` to the solver pods (EndpointSlices with this label in
    the router's namespace) and redirects every other request to HTTPS on `httpsPort`. The scoring port
    stays as it is, for callers inside the cluster."""
    port: int = Field(8088, gt=0, lt=65536)
    solver_label_selector: str = "acme.cert-manager.io/http01-solver=true"
    solver_port: int = Field(8089, gt=0, lt=65536)
    https_port: int = Field(443, gt=0, lt=65536)  # what clients dial (the load balancer's), not the pod's


class HttpLimits(Model):
    """What one client may take of the scoring port (the same on every listener). Each holds a hostile
    client to a bounded cost: a connection, a slot or memory is never held longer or larger than this."""

    max_header_bytes: int = Field(64 * 1024, ge=1024)  # request line and headers together; more is 431
    max_header_count: int = Field(100, ge=10)  # header lines; more is 431
    body_timeout_seconds: float = Field(30, gt=0)  # the whole body, from the end of the head; then 408
    min_body_bytes_per_second: int = Field(64 * 1024, gt=0)  # each such many bytes add a second to it
    send_timeout_seconds: float = Field(30, gt=0)  # an answer the client reads none of for this long is cut off
    keep_alive_seconds: float = Field(75, gt=0)  # idle connections (or a head that never completes) close
    response_buffer_bytes: int = Field(1024 * 1024, ge=64 * 1024)  # answer bytes held for a slow client


class RouterOptions(Model):
    cluster: ClusterOptions | None = None  # set when the router runs in Kubernetes
    limits: HttpLimits = HttpLimits()
    tls: TlsOptions | None = None
    acme: AcmeOptions | None = None
    shutdown_grace_seconds: float = Field(30, ge=0)  # in-flight requests may finish this long on SIGTERM
    probe_interval_seconds: float = Field(1, gt=0)  # how often an ejected replica is probed
    log_requests: bool = True

    @model_validator(mode="after")
    def _acme_needs_tls_and_cluster(self) -> "RouterOptions":
        if self.acme is not None and (self.tls is None or self.cluster is None):
            raise ValueError("router.acme needs router.tls (the certificate it obtains) and router.cluster "
                             "(the solver pods are found through the Kubernetes API)")
        return self


class RouterConfig(Model):
    services: dict[str, ServiceConfig]
    endpoints: dict[str, EndpointConfig] = {}
    router: RouterOptions = RouterOptions()

    @model_validator(mode="after")
    def _names_and_references(self) -> "RouterConfig":
        for name in self.services:
            _check_name(name, "service")
        for name, endpoint in self.endpoints.items():
            _check_name(name, "endpoint")
            for version_name, version in endpoint.versions.items():
                if version.service not in self.services:
                    raise ValueError(f"endpoints.{name}.versions.{version_name}.service "
                                     f"{version.service!r} is not a key of services")
        return self


def _check_name(name: str, what: str) -> None:
    if not (3 <= len(name) <= 32 and re.match(NAME_PATTERN, name)):
        raise ValueError(f"{what} name {name!r} must be 3-32 chars matching {NAME_PATTERN}")


def load_config(path: str | Path) -> RouterConfig:
    """Read a RouterConfig from JSON or YAML (YAML is a superset of JSON, so one parser reads both)."""
    text = Path(path).read_text()
    data = json.loads(text) if str(path).endswith(".json") else yaml.safe_load(text)
    return RouterConfig.model_validate(data)

"""StackConfig -> RouterConfig, the router's only input; one code path for the cluster and this machine.

The two deployers differ only in where replicas run (`backend`) and where keys come from (`auth`);
they pass those in. Every model deployment becomes a router service: `services.<name>` under its own
name, each endpoint version as `<endpoint>-<version>` with its endpoint's auth. The result is checked
against the router's own schema here, so a config the router would refuse is never written.
"""
from __future__ import annotations

import json
from typing import Any, Callable

from components.config import AuthSettings, ConfigError, DeploymentSpec, StackConfig, version_service_name
from components.config.token_auth import TokenAuth
from router.settings import RouterConfig

TOKEN_ISSUER = "aks-serving"  # the `iss` of the tokens the stack's own key signs (audience: the service's name)
CONFIG_FILE = "config.json"  # the router reads a file by its suffix: json.loads, where YAML would be pure Python
MAX_CONFIG_BYTES = 1024 * 1024  # the API server refuses a ConfigMap whose data is over 1 MiB

BackendFor = Callable[[str, DeploymentSpec], dict]
AuthFor = Callable[[str, AuthSettings], dict]


def render_router_config(cfg: StackConfig, backend: BackendFor, auth: AuthFor,
                         router: dict[str, Any] | None = None) -> dict:
    services = {name: _service(cfg, spec, backend(name, spec), auth(name, spec))
                for name, spec in cfg.services.items()}
    endpoints = {}
    for name, endpoint in cfg.endpoints.items():
        endpoint_auth = auth(name, endpoint)
        for version, spec in endpoint.versions.items():
            service = version_service_name(name, version)
            services[service] = _service(cfg, spec, backend(service, spec), endpoint_auth)
        endpoints[name] = {
            "auth": endpoint_auth,
            "defaultVersion": endpoint.default_version,
            "versions": {version: {"service": version_service_name(name, version),
                                   "trafficPercentile": spec.traffic_percentile,
                                   "role": "control" if spec.is_control_version_type else "treatment"}
                         for version, spec in endpoint.versions.items()},
        }
    options = dict(router or {})
    limits = cfg.router.limits.model_dump(by_alias=True, exclude_defaults=True)
    if limits:  # only what the stack changed: the router's defaults stay in one place
        options["limits"] = limits
    document = {"services": services, "endpoints": endpoints, "router": options}
    RouterConfig.model_validate(document)
    return document


def oidc_token_auth(token: TokenAuth) -> dict:
    """The router's token settings for a service that trusts an OIDC issuer: the same on the cluster and under
    `make run`, with nothing of the stack's own signing key (the issuer's published keys only)."""
    audiences = token.audiences
    return {"mode": "token", "token": {"issuer": token.issuer_url, "discoveryUrl": token.discovery_url,
                                       "audience": audiences[0] if len(audiences) == 1 else audiences,
                                       "algorithms": list(token.algorithms)}}


def _service(cfg: StackConfig, spec: DeploymentSpec, backend: dict, auth: dict) -> dict:
    # The flag only where it is on, so a stack without it keeps its router config (and pods) unchanged.
    telemetry = {"appInsights": True} if spec.enable_app_insights else {}
    return {
        **telemetry,
        "auth": auth,
        "backend": backend,
        "requests": {
            "maxConcurrentPerReplica": spec.replica_max_concurrent_requests,
            "maxQueueWaitMs": spec.max_request_wait_time_ms,
            "scoringTimeoutMs": spec.scoring_timeout_ms,
            "maxBodyBytes": cfg.router.max_request_body_mb * 1024 * 1024,
        },
        "autoscale": _autoscale(spec),
    }


def _autoscale(spec: DeploymentSpec) -> dict:
    a = spec.autoscale
    # A fixed replica count is autoscaling pinned to one size: the router keeps it (no Deployment
    # carries a replica count), with the same mechanism that keeps min and max.
    low, high = (spec.num_replicas, spec.num_replicas) if not spec.autoscale_enabled else (a.min_replicas, a.max_replicas)
    return {"enabled": True, "minReplicas": low, "maxReplicas": high, "targetUtilization": a.target_utilization,
            "refreshSeconds": a.refresh_seconds, "stableWindowSeconds": a.stable_window_seconds}


def config_text(document: dict) -> str:
    """`document` as JSON with one line per service and per endpoint: the C encoder writes a thousand services
    in milliseconds (PyYAML's representer is pure Python, ~20 x slower), the text is smaller than YAML, and a
    change to one service is a change to one line of the ConfigMap."""
    def line(key: str, value: Any) -> str:
        return f"{json.dumps(key)}: {json.dumps(value, sort_keys=True)}"

    sections = []
    for key, value in sorted(document.items()):
        if key in ("services", "endpoints") and value:
            entries = ",\n  ".join(line(name, entry) for name, entry in sorted(value.items()))
            sections.append(f"{json.dumps(key)}: {{\n  {entries}\n}}")
        else:
            sections.append(line(key, value))
    return "{\n" + ",\n".join(sections) + "\n}\n"


def check_config_size(text: str, deployments: int) -> None:
    """A config the API server would refuse is a config error, found before anything is created."""
    size = len(text.encode())
    if size > MAX_CONFIG_BYTES:
        raise ConfigError([f"services: the router's config for {deployments} services and endpoint versions is "
                           f"{size:,} bytes, over the 1 MiB a ConfigMap holds: split the services across stacks"])

"""StackConfig -> RouterConfig, the router's only input; one code path for the cluster and this machine.

The two deployers differ only in where replicas run (`backend`) and where keys come from (`auth`);
they pass those in. Every model deployment becomes a router service: `services.<name>` under its own
name, each endpoint version as `<endpoint>-<version>` with its endpoint's auth. The result is checked
against the router's own schema here, so a config the router would refuse is never written.
"""
from __future__ import annotations

from typing import Any, Callable

from components.config import AuthSettings, DeploymentSpec, StackConfig, version_service_name
from router.settings import RouterConfig

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
    document = {"services": services, "endpoints": endpoints, "router": router or {}}
    RouterConfig.model_validate(document)
    return document


def _service(cfg: StackConfig, spec: DeploymentSpec, backend: dict, auth: dict) -> dict:
    return {
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

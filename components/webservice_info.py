"""What v1's `Webservice` told about a service (`az ml service show`, `Webservice.serialize()`), from the
stack config: v1's field names, so a script that read them finds them in the stack outputs.

Pure: no Pulumi import. The runtime state (v1's `state`, replicas, errors) is not config; the entry says
where to read it (`stateCommand`, and the Kubernetes Deployment that holds it).
"""
from __future__ import annotations

from components.config import DeploymentSpec, Endpoint, ServiceSpec, StackConfig, version_service_name
from components.router_config import TOKEN_ISSUER

STATUS_COMMAND = "python -m aks_serving status --stack {stack}"


def service_info(cfg: StackConfig, name: str, spec: ServiceSpec, stack: str) -> dict:
    return {"computeType": "AKS", **_auth(name, spec), **_deployment(cfg, name, spec, stack), **_described(spec)}


def endpoint_info(cfg: StackConfig, name: str, endpoint: Endpoint, stack: str) -> dict:
    traffic = endpoint.effective_traffic()
    versions = {version: {"trafficPercentile": spec.traffic_percentile, "effectiveTrafficPercent": traffic[version],
                          "isDefault": version == endpoint.default_version,
                          "isControlVersionType": spec.is_control_version_type,
                          **_deployment(cfg, version_service_name(name, version), spec, stack), **_described(spec)}
                for version, spec in endpoint.versions.items()}
    return {"computeType": "AKSENDPOINT", **_auth(name, endpoint), "defaultVersion": endpoint.default_version,
            "traffic": traffic, **_described(endpoint), "versions": versions}


def _auth(name: str, settings) -> dict:
    found = {"auth": settings.auth_mode, "authEnabled": settings.auth_mode == "key",
             "tokenAuthEnabled": settings.auth_mode == "token"}
    if settings.auth_mode == "token":
        # Who issues the tokens the router accepts: an OIDC issuer the config names, or the stack's own key
        # (`python -m aks_serving token`), whose issuer is fixed and whose audience is the service's name.
        oidc = settings.token_auth
        found["token"] = ({"issuer": oidc.issuer_url, "audiences": oidc.audiences} if oidc else
                          {"issuer": TOKEN_ISSUER, "audiences": [name]})
    return found


def _deployment(cfg: StackConfig, service: str, spec: DeploymentSpec, stack: str) -> dict:
    a = spec.autoscale
    return {
        "environment": spec.environment,
        "models": [f"{m.name}:{m.version}" for m in spec.models],
        "appInsightsEnabled": spec.enable_app_insights,
        "dataCollection": {"storageEnabled": spec.collect_model_data},
        "autoScaler": {"autoscaleEnabled": spec.autoscale_enabled, "minReplicas": a.min_replicas,
                       "maxReplicas": a.max_replicas, "targetUtilization": a.target_utilization,
                       "refreshPeriodInSeconds": a.refresh_seconds},
        "numReplicas": spec.num_replicas,
        "containerResourceRequirements": {"cpu": spec.cpu_cores, "memoryInGB": spec.memory_gb,
                                          "cpuLimit": spec.cpu_cores_limit, "memoryInGBLimit": spec.memory_gb_limit,
                                          "gpu": spec.gpu_cores},
        "maxConcurrentRequestsPerContainer": spec.replica_max_concurrent_requests,
        "maxQueueWaitMs": spec.max_request_wait_time_ms,
        "scoringTimeoutMs": spec.scoring_timeout_ms,
        "kubernetes": {"namespace": cfg.models_namespace_of(spec), "deployment": service},
        "stateCommand": STATUS_COMMAND.format(stack=stack),
    }


def _described(item) -> dict:
    return {"description": item.description, "tags": dict(item.tags), "properties": dict(item.properties)}

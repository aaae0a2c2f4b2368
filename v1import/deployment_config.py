"""`deploymentconfig.json` (`az ml model deploy -dc`) for computeType AKS or AKSENDPOINT, read with the keys
azureml-core's `deploy_config_dict_to_obj` read, mapped onto a service's (or endpoint version's) keys."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from v1import.documents import V1ImportError, read_document, section, unknown_keys
from v1import.report import Report
from v1import.tree import put

COMPUTE_TYPES = {"aks": "AKS", "aksendpoint": "AKSENDPOINT"}
# Nested v1 key -> this project's key, per nested section.
AUTOSCALER = {"autoscaleEnabled": "autoscale.enabled", "minReplicas": "autoscale.minReplicas",
              "maxReplicas": "autoscale.maxReplicas", "refreshPeriodInSeconds": "autoscale.refreshSeconds",
              "targetUtilization": "autoscale.targetUtilization"}
RESOURCES = {"cpu": "cpuCores", "memoryInGB": "memoryGb", "cpuLimit": "cpuCoresLimit",
             "memoryInGBLimit": "memoryGbLimit", "gpu": "gpuCores"}
LIVENESS = {k: f"livenessProbe.{k}" for k in ("periodSeconds", "initialDelaySeconds", "timeoutSeconds",
                                                "successThreshold", "failureThreshold")}
DATA_COLLECTION = {"storageEnabled": "collectModelData"}
KEYS = ("primaryKey", "secondaryKey")
# Top-level v1 key -> this project's key, for what lands on the deployment itself.
DEPLOYMENT = {"appInsightsEnabled": "enableAppInsights", "scoringTimeoutMs": "scoringTimeoutMs",
              "maxConcurrentRequestsPerContainer": "replicaMaxConcurrentRequests",
              "maxQueueWaitMs": "maxRequestWaitTimeMs", "numReplicas": "numReplicas", "gpuCores": "gpuCores",
              "namespace": "namespace"}
AUTH = {"authEnabled": "authEnabled", "tokenAuthEnabled": "tokenAuthEnabled"}
NESTED = {"autoScaler": AUTOSCALER, "containerResourceRequirements": RESOURCES,
          "livenessProbeRequirements": LIVENESS, "dataCollection": DATA_COLLECTION, "keys": dict.fromkeys(KEYS)}
ENDPOINT_ONLY = ("versionName", "trafficPercentile")
# AksWebservice.deploy_configuration's parameter names (and a JSON spelling seen in public samples), as
# people wrote them into a deploymentconfig; az ml ignored them, so the setting silently kept its default.
SDK_NAMES = {
    "autoscale_enabled": "autoScaler.autoscaleEnabled", "autoscale_min_replicas": "autoScaler.minReplicas",
    "autoscale_max_replicas": "autoScaler.maxReplicas", "autoscale_refresh_seconds": "autoScaler.refreshPeriodInSeconds",
    "autoscale_target_utilization": "autoScaler.targetUtilization", "cpu_cores": "containerResourceRequirements.cpu",
    "memory_gb": "containerResourceRequirements.memoryInGB", "cpu_cores_limit": "containerResourceRequirements.cpuLimit",
    "memory_gb_limit": "containerResourceRequirements.memoryInGBLimit", "gpu_cores": "gpuCores",
    "auth_enabled": "authEnabled", "token_auth_enabled": "tokenAuthEnabled", "enable_app_insights": "appInsightsEnabled",
    "enableAppInsights": "appInsightsEnabled", "collect_model_data": "dataCollection.storageEnabled",
    "scoring_timeout_ms": "scoringTimeoutMs", "replica_max_concurrent_requests": "maxConcurrentRequestsPerContainer",
    "max_request_wait_time": "maxQueueWaitMs", "num_replicas": "numReplicas", "primary_key": "keys.primaryKey",
    "secondary_key": "keys.secondaryKey", "compute_target_name": "computeTargetName", "version_name": "versionName",
    "traffic_percentile": "trafficPercentile", "containerResourceReservation": "containerResourceRequirements",
}
TOP_LEVEL = ("computeType", *DEPLOYMENT, *AUTH, *NESTED, "computeTargetName", *ENDPOINT_ONLY)


@dataclass
class DeploymentConfig:
    file: Path
    compute_type: str  # AKS or AKSENDPOINT
    deployment: dict = field(default_factory=dict)  # a service's or endpoint version's keys (tree of Sourced)
    auth: dict = field(default_factory=dict)  # authEnabled, tokenAuthEnabled: the service's or the endpoint's
    keys: dict[str, str] = field(default_factory=dict)  # keys.primaryKey -> the v1 key path holding it
    compute_target: Optional[str] = None
    version_name: Optional[str] = None


def read_deployment_config(path: Path, report: Report) -> DeploymentConfig:
    document = read_document(path)
    # az ml model deploy took these as options, not from the file.
    options = {k: f"{path}: {k}: az ml took it as an option, not from the file; give it as --{k.rstrip('s')}"
               for k in ("description", "tags", "properties") if k in document}
    problems = list(options.values()) + unknown_keys({k: v for k, v in document.items() if k not in options},
                                                     TOP_LEVEL, path, aliases=SDK_NAMES)
    for key, mapping in NESTED.items():
        problems += unknown_keys(section(document, key, path), mapping, path, f"{key}.")
    compute_type = COMPUTE_TYPES.get(str(document.get("computeType", "")).lower())
    if "computeType" not in document:
        problems.append(f"{path}: computeType: required (AKS or AKSENDPOINT), as az ml required it")
    elif compute_type is None:
        problems.append(f"{path}: computeType: {document.get('computeType')!r}; this tool brings AKS deployments "
                        "over: AKS (a web service) or AKSENDPOINT (an endpoint with versions)")
    elif compute_type == "AKS":
        problems += [f"{path}: {k}: only for computeType AKSENDPOINT (an endpoint version's)"
                     for k in ENDPOINT_ONLY if k in document]
    if problems:
        raise V1ImportError(problems)
    config = DeploymentConfig(path, compute_type, compute_target=document.get("computeTargetName"),
                              version_name=document.get("versionName"))
    _map_deployment(document, config, report)
    return config


def _map_deployment(document: dict, config: DeploymentConfig, report: Report) -> None:
    name = config.file.name
    for key, target in DEPLOYMENT.items():
        put(config.deployment, target, document.get(key), f"{name}: {key}")
    for key, target in AUTH.items():
        put(config.auth, target, document.get(key), f"{name}: {key}")
    for outer, mapping in (("autoScaler", AUTOSCALER), ("livenessProbeRequirements", LIVENESS),
                           ("dataCollection", DATA_COLLECTION)):
        for key, value in section(document, outer, config.file).items():
            put(config.deployment, mapping[key], value, f"{name}: {outer}.{key}")
    _map_resources(section(document, "containerResourceRequirements", config.file), document, config)
    if document.get("numReplicas") == 0:
        # v1's docs: numReplicas 0 means the autoscaler decides; this schema wants it unset for that.
        config.deployment.pop("numReplicas")
        report.note(f"{name}: numReplicas", "0 meant 'autoscale' in v1; left unset here, which means the same")
    put(config.deployment, "trafficPercentile", document.get("trafficPercentile"), f"{name}: trafficPercentile")
    for key, value in section(document, "keys", config.file).items():
        if value is not None:
            config.keys[key] = f"keys.{key}"


def _map_resources(resources: dict[str, Any], document: dict, config: DeploymentConfig) -> None:
    name = config.file.name
    if "gpu" in resources and "gpuCores" in document and resources["gpu"] != document["gpuCores"]:
        raise V1ImportError([f"{config.file}: containerResourceRequirements.gpu: {resources['gpu']} differs from "
                             f"gpuCores {document['gpuCores']}; az ml read gpuCores, give one of them"])
    for key, value in resources.items():
        if key == "gpu" and "gpuCores" in document:
            continue
        put(config.deployment, RESOURCES[key], value, f"{name}: containerResourceRequirements.{key}")

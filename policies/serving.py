"""Serving rules read from the router's config and the model Deployments: key or token auth on every service
of a production stack, Azure ML v1's endpoint traffic rules, and at most 1,000 models per service."""
from __future__ import annotations

from pulumi_policy import ResourceValidationPolicy

import kube
from clusters import stack_purposes
from support import (LATER, UNKNOWN, Findings, Resource, ResourceCheck, Setting, as_dict, get, listed, of_types,
                     resource_policy, stack_policy, strings, whole_number)

MAX_ENDPOINT_VERSIONS = 6  # Azure ML v1's AksEndpoint limit
MAX_MODELS_PER_SERVICE = 1000  # Azure ML v1's limit per web service

_CLUSTER_PURPOSE = Setting("clusterPurpose", {
    "type": "string", "enum": ["production", "dev-test"],
    "description": "The purpose of the cluster the stack deploys to, for stacks without a ManagedCluster tagged "
                   "cluster-purpose (an attached cluster); by default read from that tag."})


def _router_configs(resources: list[Resource], findings: Findings, report_unreadable: bool = True) -> list:
    configs = []
    for resource in resources:
        config = kube.router_config(resource)
        if config is None:
            continue
        if config.unknown:
            findings.cannot_decide(f"{resource.label}: the router config (data.{config.key}) is not known yet; "
                                   f"{LATER}")
        elif config.problem:
            if report_unreadable:
                findings.violation(kube.unreadable(config), resource.urn)
        else:
            configs.append(config)
    return configs


# ---- auth on production ---------------------------------------------------------------------------------


def _auth(resources: list[Resource], config: dict, findings: Findings) -> None:
    allowed = [m for m in config["allowedModes"] if isinstance(m, str)]
    open_ones = []
    for router in _router_configs(resources, findings):
        for section, what in (("services", "service"), ("endpoints", "endpoint")):
            for name, spec in as_dict(router.document.get(section)).items():
                mode = get(spec, "auth", "mode")
                mode = "key" if mode is None and isinstance(get(spec, "auth"), dict) else mode  # the router's default
                if mode not in allowed:
                    open_ones.append((router.resource, f"{what} {name}", mode))
    if not open_ones:
        return
    purposes = stack_purposes(resources, config["clusterPurpose"])
    for resource, name, mode in open_ones:
        shown = "no auth section" if mode is None else f"auth mode {mode!r}"
        if purposes is UNKNOWN or not purposes:
            why = "is not known yet" if purposes is UNKNOWN else \
                "is not in the stack (no ManagedCluster tagged cluster-purpose; set clusterPurpose in the pack config)"
            findings.cannot_decide(f"{resource.label}: {name} has {shown}, which a production stack may not have, "
                                   f"and the cluster's purpose {why}")
        elif "production" in purposes:
            findings.violation(f"{resource.label}: {name} has {shown} on a production stack; every service and "
                               f"endpoint there needs {' or '.join(allowed)} auth. Fix: set authEnabled: true "
                               "(keys) or tokenAuthEnabled: true for it in the stack config", resource.urn)


# ---- endpoint traffic -----------------------------------------------------------------------------------


def _traffic(resource: Resource, config: dict, findings: Findings) -> None:
    routers = _router_configs([resource], findings)
    if not routers:
        return
    document = routers[0].document
    services = as_dict(document.get("services"))
    most = whole_number(config["maxVersions"]) or MAX_ENDPOINT_VERSIONS
    for name, endpoint in as_dict(document.get("endpoints")).items():
        at = f"{resource.label}: endpoint {name}"
        versions = get(endpoint, "versions")
        if not isinstance(versions, dict) or not versions:
            findings.violation(f"{at} has no versions. Fix: give it at least one version, or remove it")
            continue
        if len(versions) > most:
            findings.violation(f"{at} has {len(versions)} versions ({listed(versions)}); at most {most} are allowed. "
                               "Fix: delete versions that take no traffic")
        total, controls = 0.0, []
        for version, spec in versions.items():
            share = get(spec, "trafficPercentile")
            share = 0 if share is None else share  # the router's default
            if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 100:
                findings.violation(f"{at}: version {version} has trafficPercentile {share!r}; each share is a number "
                                   "from 0 to 100. Fix: set trafficPercentile between 0 and 100")
            else:
                total += share
            if get(spec, "role") == "control":
                controls.append(version)
            service = get(spec, "service")
            if isinstance(service, str) and service not in services:
                findings.violation(f"{at}: version {version} runs as service {service!r}, which the router config "
                                   "does not define. Fix: render the version's service into services")
        if total > 100:
            findings.violation(f"{at}: the versions' traffic shares add up to {total:g} %; they may add up to at "
                               "most 100 (the default version gets the rest). Fix: lower trafficPercentile values")
        default = get(endpoint, "defaultVersion")
        if default is not None and default not in versions:
            findings.violation(f"{at}: defaultVersion {default!r} is not one of its versions ({listed(versions)}). "
                               "Fix: mark exactly one existing version isDefault (or none: the first is default)")
        if len(controls) > 1:
            findings.violation(f"{at}: {len(controls)} versions are control versions ({listed(controls)}); at most "
                               "one may be. Fix: set isControlVersionType on one version only")


# ---- models per service ---------------------------------------------------------------------------------


def _models(resource: Resource, config: dict, findings: Findings) -> None:
    if kube.component_of(resource) is UNKNOWN:
        findings.cannot_decide(f"{resource.label}: its {kube.COMPONENT_LABEL} label is not known yet, so whether "
                               f"it is a model Deployment cannot be told; {LATER}")
        return
    if not kube.is_model_deployment(resource):
        return
    most = whole_number(config["maxModelsPerService"]) or MAX_MODELS_PER_SERVICE
    value = get(resource.props, "metadata", "annotations", kube.MODEL_COUNT_ANNOTATION)
    if value is UNKNOWN:
        findings.cannot_decide(f"{resource.label}: the {kube.MODEL_COUNT_ANNOTATION} annotation is not known yet; "
                               f"{LATER}")
        return
    if value is None:
        findings.cannot_decide(f"{resource.label} is a model Deployment without the {kube.MODEL_COUNT_ANNOTATION} "
                               "annotation, so its number of models cannot be checked; set the annotation to the "
                               "number of models the service loads (policies/README.md)")
        return
    count = whole_number(value)
    if count is None:
        findings.violation(f"{resource.label}: annotation {kube.MODEL_COUNT_ANNOTATION}={value!r} is not a whole "
                           "number. Fix: set it to the number of models the service loads")
    elif count > most:
        findings.violation(f"{resource.label} loads {count} models; a service may load at most {most}. Fix: split "
                           "the models over several services (or endpoint versions)")


def _limit_policy(name: str, description: str, resource_type: str, check: ResourceCheck, setting: str, about: str,
                  limit: int) -> ResourceValidationPolicy:
    """A resource policy for one resource type whose config holds one limit (a whole number, at least 1)."""
    return resource_policy(name, description, of_types(resource_type), check,
                           settings=[Setting(setting, {"type": "integer", "minimum": 1, "description": about}, limit)])


POLICIES = [
    stack_policy(
        "production-service-auth",
        "On a production cluster every service and endpoint of the router uses key or token auth.",
        _auth, settings=[_CLUSTER_PURPOSE, strings("allowedModes", "Auth modes a production service may use.",
                                                   ["key", "token"])]),
    _limit_policy(
        "endpoint-traffic",
        f"An endpoint has 1 to {MAX_ENDPOINT_VERSIONS} versions, each with a traffic share from 0 to 100, shares "
        "adding up to at most 100, one default version and at most one control version.",
        kube.CONFIG_MAP, _traffic, "maxVersions", "The most versions an endpoint may have.", MAX_ENDPOINT_VERSIONS),
    _limit_policy(
        "models-per-service",
        f"A model service loads at most {MAX_MODELS_PER_SERVICE:,} models (the {kube.MODEL_COUNT_ANNOTATION} "
        "annotation of its Deployment).",
        kube.DEPLOYMENT, _models, "maxModelsPerService", "The most models one service may load.",
        MAX_MODELS_PER_SERVICE),
]

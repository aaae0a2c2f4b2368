"""Engine-shaped resources for the policy pack's tests: camelCase properties as `pulumi preview` sends them to
an analyzer. Each builder makes a resource that passes every policy; tests change one thing to break one."""
from __future__ import annotations

import copy
from typing import Any, Iterable, Optional

from tools.analyzer import UNKNOWN, Diagnostic, Resource, urn  # noqa: F401 (UNKNOWN: for the tests)

STACK = "test"
DIGEST = "sha256:" + "ab" * 32
IMAGE = f"mlwtestacr.azurecr.io/azureml/azureml_0123@{DIGEST}"
PART_OF = {"app.kubernetes.io/part-of": "aks-serving"}
MODELS_NS = "aks-serving-models"
ROUTER_NS = "aks-serving"


def resource(type_: str, name: str, properties: dict, **extra: Any) -> Resource:
    return Resource(type=type_, name=name, properties=properties, urn=urn(STACK, type_, name), **extra)


# ---- Kubernetes -----------------------------------------------------------------------------------------


def container(name: str = "model", image: Any = IMAGE, **overrides: Any) -> dict:
    spec = {
        "name": name, "image": image,
        "ports": [{"name": "http", "containerPort": 5001.0, "protocol": "TCP"}],
        "resources": {"requests": {"cpu": "100m", "memory": "512Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}},
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "runAsNonRoot": True, "runAsUser": 1000.0, "capabilities": {"drop": ["ALL"]},
                            "seccompProfile": {"type": "RuntimeDefault"}},
    }
    spec.update(overrides)
    return spec


def pod_spec(containers: Optional[list] = None, init: Optional[list] = None, **overrides: Any) -> dict:
    spec = {
        "containers": containers if containers is not None else [container()],
        "securityContext": {"runAsNonRoot": True, "runAsUser": 1000.0, "fsGroup": 1000.0,
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "volumes": [{"name": "tmp", "emptyDir": {"medium": "Memory"}}],
    }
    if init is not None:
        spec["initContainers"] = init
    spec.update(overrides)
    return spec


def deployment(name: str = "diabetes", component: str = "model", *, namespace: Any = MODELS_NS,
               spec: Any = None, annotations: Optional[dict] = None, labels: Optional[dict] = None,
               models: Any = "1", kind_type: str = "kubernetes:apps/v1:Deployment", **extra: Any) -> Resource:
    all_labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/component": component, **PART_OF,
                  **(labels or {})}
    all_annotations = dict(annotations or {})
    if component == "model" and models is not None:
        all_annotations["aks-serving/model-count"] = models
    metadata = {"name": name, "labels": all_labels}
    if namespace is not None:
        metadata["namespace"] = namespace
    if all_annotations:
        metadata["annotations"] = all_annotations
    selector = {"matchLabels": {"app.kubernetes.io/name": name, "app.kubernetes.io/component": component}}
    template = {"metadata": {"labels": all_labels}, "spec": pod_spec() if spec is None else spec}
    kind = kind_type.rsplit(":", 1)[-1]
    body = {"selector": selector, "template": template}
    if kind == "CronJob":
        body = {"schedule": "0 * * * *", "jobTemplate": {"spec": {"template": template}}}
    elif kind == "Pod":
        body = template["spec"]
    return resource(kind_type, f"{name}-{kind.lower()}",
                    {"apiVersion": kind_type.split(":")[1], "kind": kind, "metadata": metadata, "spec": body},
                    **extra)


def router_document(services: Optional[dict] = None, endpoints: Optional[dict] = None) -> dict:
    """A RouterConfig (router/settings.py): a keyed service `diabetes` and an endpoint with two versions."""
    def service(name: str, auth: Optional[dict] = None) -> dict:
        return {"auth": auth or {"mode": "key", "keySecretLabels": {"aks-serving/keys-for": name}},
                "backend": {"kind": "kubernetes", "namespace": MODELS_NS, "service": name, "deployment": name}}

    default_services = {"diabetes": service("diabetes"), "sentiment-ab-v1": service("sentiment-ab"),
                        "sentiment-ab-v2": service("sentiment-ab")}
    default_endpoints = {"sentiment-ab": {
        "auth": {"mode": "key", "keySecretLabels": {"aks-serving/keys-for": "sentiment-ab"}},
        "defaultVersion": "v1",
        "versions": {"v1": {"service": "sentiment-ab-v1", "trafficPercentile": 80.0, "role": "control"},
                     "v2": {"service": "sentiment-ab-v2", "trafficPercentile": 20.0, "role": "treatment"}}}}
    return {"services": default_services if services is None else services,
            "endpoints": default_endpoints if endpoints is None else endpoints,
            "router": {"cluster": {"namespace": ROUTER_NS}}}


def router_config_map(document: Any = None, *, text: Any = None, key: str = "config.yaml") -> Resource:
    import yaml

    if text is None:
        text = yaml.safe_dump(router_document() if document is None else document)
    return resource("kubernetes:core/v1:ConfigMap", "router-config", {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "router-config", "namespace": ROUTER_NS,
                     "labels": {"app.kubernetes.io/name": "router", "app.kubernetes.io/component": "router",
                                **PART_OF}},
        "data": {key: text}})


def hpa(name: str, target: Any, *, version: str = "v2", namespace: Any = MODELS_NS, kind: str = "Deployment",
        labels: Optional[dict] = None, **extra: Any) -> Resource:
    type_ = f"kubernetes:autoscaling/{version}:HorizontalPodAutoscaler"
    spec: dict = {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": kind, "name": target},
                  "minReplicas": 1.0, "maxReplicas": 5.0}
    if version == "v1":
        spec["targetCPUUtilizationPercentage"] = 70.0
    else:
        spec["metrics"] = [{"type": "Resource", "resource": {"name": "cpu", "target": {
            "type": "Utilization", "averageUtilization": 70.0}}}]
    metadata = {"name": name, "labels": {**PART_OF, **(labels or {})}}
    if namespace is not None:
        metadata["namespace"] = namespace
    return resource(type_, name, {"apiVersion": f"autoscaling/{version}", "kind": "HorizontalPodAutoscaler",
                                  "metadata": metadata, "spec": spec}, **extra)


def scaled_object(name: str, target: Any, *, namespace: str = MODELS_NS) -> Resource:
    return resource("kubernetes:keda.sh/v1alpha1:ScaledObject", name, {
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(PART_OF)},
        "spec": {"scaleTargetRef": {"name": target}, "minReplicaCount": 1.0, "maxReplicaCount": 5.0,
                 "triggers": [{"type": "cpu", "metricType": "Utilization", "metadata": {"value": "70"}}]}})


# ---- Azure ----------------------------------------------------------------------------------------------


def pool_profile(name: str = "system", vm_size: Any = "Standard_D4s_v5", count: Any = 3.0, **extra: Any) -> dict:
    return {"name": name, "mode": "System", "vmSize": vm_size, "count": count, "osType": "Linux",
            "type": "VirtualMachineScaleSets", "enableAutoScaling": False, **extra}


def managed_cluster(name: Any = "aks-serving-prod", purpose: Any = "production", pools: Optional[list] = None,
                    pulumi_name: str = "cluster-aks", **extra: Any) -> Resource:
    props = {"resourceName": name, "resourceGroupName": "rg-test", "location": "westeurope",
             "dnsPrefix": "aks", "agentPoolProfiles": [pool_profile()] if pools is None else pools,
             "tags": {"managed-by": "aks-serving"} if purpose is None else {"cluster-purpose": purpose,
                                                                         "managed-by": "aks-serving"}}
    return resource("azure-native:containerservice:ManagedCluster", pulumi_name, props, **extra)


def agent_pool(pool: str, vm_size: Any, count: Any, *, cluster: Any = "aks-serving-prod",
               pulumi_name: Optional[str] = None, property_dependencies: Optional[dict] = None,
               **extra_props: Any) -> Resource:
    props = {"resourceName": cluster, "resourceGroupName": "rg-test", "agentPoolName": pool, "vmSize": vm_size,
             "count": count, "mode": "User", "osType": "Linux", "type": "VirtualMachineScaleSets",
             "nodeLabels": {"aks-serving/pool": pool}, **extra_props}
    return resource("azure-native:containerservice:AgentPool", pulumi_name or f"cluster-pool-{pool}", props,
                    property_dependencies=property_dependencies or {})


# ---- diagnostics ----------------------------------------------------------------------------------------


def mandatory(diagnostics: Iterable[Diagnostic], policy: Optional[str] = None) -> list[Diagnostic]:
    return [d for d in diagnostics if d.mandatory and (policy is None or d.policy == policy)]


def advisory(diagnostics: Iterable[Diagnostic], policy: Optional[str] = None) -> list[Diagnostic]:
    return [d for d in diagnostics if d.level == "advisory" and (policy is None or d.policy == policy)]


def only(diagnostics: Iterable[Diagnostic], policy: str) -> list[Diagnostic]:
    """The diagnostics of one policy, asserting that no other policy said anything."""
    diagnostics = list(diagnostics)
    others = [d for d in diagnostics if d.policy != policy]
    assert not others, f"other policies reported: {[(d.policy, d.message) for d in others]}"
    return diagnostics


def changed(value: dict, path: str, new: Any) -> dict:
    """A deep copy of `value` with the dotted `path` set to `new` (list indexes as numbers)."""
    result = copy.deepcopy(value)
    target = result
    steps = path.split(".")
    for step in steps[:-1]:
        target = target[int(step)] if isinstance(target, list) else target[step]
    last = steps[-1]
    if isinstance(target, list):
        target[int(last)] = new
    else:
        target[last] = new
    return result

"""Reading Kubernetes objects as the engine sends them (camelCase manifests) and the project's conventions.

Conventions (README.md): every object carries `app.kubernetes.io/part-of: aks-serving`; model Deployments
`app.kubernetes.io/component: model` and the annotation `aks-serving/model-count`; the router's Deployment
and the ConfigMap holding its RouterConfig (data key `config.json` as this stack writes it, or `config.yaml`
or `config.yml`) are `app.kubernetes.io/component: router`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterator, Optional

import yaml

from support import UNKNOWN, Resource, as_dict, as_list, get

COMPONENT_LABEL = "app.kubernetes.io/component"
PART_OF_LABEL = "app.kubernetes.io/part-of"
MODEL_COUNT_ANNOTATION = "aks-serving/model-count"
ROUTER_CONFIG_KEYS = ("config.yaml", "config.yml", "config.json")

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"

# Where each workload type keeps its pod spec.
_TEMPLATE = ("spec", "template", "spec")
POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    DEPLOYMENT: _TEMPLATE,
    "kubernetes:apps/v1:StatefulSet": _TEMPLATE,
    "kubernetes:apps/v1:DaemonSet": _TEMPLATE,
    "kubernetes:apps/v1:ReplicaSet": _TEMPLATE,
    "kubernetes:core/v1:ReplicationController": _TEMPLATE,
    "kubernetes:batch/v1:Job": _TEMPLATE,
    "kubernetes:batch/v1:CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
    "kubernetes:core/v1:Pod": ("spec",),
}
CONTAINER_GROUPS = ("initContainers", "containers", "ephemeralContainers")


def is_workload(resource_type: str) -> bool:
    return resource_type in POD_SPEC_PATHS


def is_scaler(resource_type: str) -> bool:
    """HorizontalPodAutoscalers of every autoscaling version, and KEDA ScaledObjects."""
    if resource_type == SCALED_OBJECT:
        return True
    return resource_type.startswith("kubernetes:autoscaling/") and resource_type.endswith(":HorizontalPodAutoscaler")


def name_of(resource: Resource) -> Any:
    return get(resource.props, "metadata", "name")


def namespace_of(resource: Resource) -> Any:
    return get(resource.props, "metadata", "namespace")


def labels_of(resource: Resource) -> Any:
    return get(resource.props, "metadata", "labels")


def component_of(resource: Resource) -> Any:
    """The object's `app.kubernetes.io/component` label (or, for a workload, its pod template's)."""
    value = get(resource.props, "metadata", "labels", COMPONENT_LABEL)
    if value is None and resource.type in POD_SPEC_PATHS:
        template = POD_SPEC_PATHS[resource.type][:-1]
        value = get(resource.props, *template, "metadata", "labels", COMPONENT_LABEL)
    return value


def is_model_deployment(resource: Resource) -> bool:
    return resource.type == DEPLOYMENT and component_of(resource) == "model"


def is_router_deployment(resource: Resource) -> bool:
    return resource.type == DEPLOYMENT and component_of(resource) == "router"


def pod_spec(resource: Resource) -> Any:
    """The workload's pod spec (dict), UNKNOWN, or None when the resource has none."""
    path = POD_SPEC_PATHS.get(resource.type)
    return get(resource.props, *path) if path else None


@dataclass(frozen=True)
class Container:
    group: str  # initContainers | containers | ephemeralContainers
    index: int
    spec: Any  # dict, or UNKNOWN

    @property
    def label(self) -> str:
        name = get(self.spec, "name")
        shown = f"'{name}'" if isinstance(name, str) else f"#{self.index}"
        kind = {"initContainers": "init container", "ephemeralContainers": "ephemeral container"}.get(
            self.group, "container")
        return f"{kind} {shown}"

    @property
    def path(self) -> str:
        return f"{self.group}[{self.index}]"


def containers(spec: Any) -> Iterator[Container]:
    """Every container of a pod spec; an unknown container list yields one Container whose spec is UNKNOWN."""
    for group in CONTAINER_GROUPS:
        items = get(spec, group)
        if items is UNKNOWN:
            yield Container(group, 0, UNKNOWN)
            continue
        for index, item in enumerate(as_list(items)):
            yield Container(group, index, item if item is UNKNOWN else as_dict(item))


def same_namespace(a: Any, b: Any) -> bool:
    """Namespaces match when equal; an unset one is whatever the provider defaults to, so it matches any."""
    return a is None or b is None or a == b


# ---- the router's config --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RouterConfig:
    """The RouterConfig a router ConfigMap holds: `document` when readable, else why not."""

    resource: Resource
    key: str
    document: Optional[dict] = None
    unknown: bool = False
    problem: Optional[str] = None


def router_config(resource: Resource) -> Optional[RouterConfig]:
    """The RouterConfig in a ConfigMap labelled `app.kubernetes.io/component: router`; None for any other."""
    if resource.type != CONFIG_MAP or get(resource.props, "metadata", "labels", COMPONENT_LABEL) != "router":
        return None
    data = get(resource.props, "data")
    if data is UNKNOWN:
        return RouterConfig(resource, "data", unknown=True)
    key = next((k for k in ROUTER_CONFIG_KEYS if k in as_dict(data)), None)
    if key is None:
        return None  # a router ConfigMap of another kind (e.g. CA bundles)
    text = data[key]
    if text is UNKNOWN:
        return RouterConfig(resource, key, unknown=True)
    if not isinstance(text, str):
        return RouterConfig(resource, key, problem=f"data.{key} is not text")
    try:
        document = json.loads(text) if key.endswith(".json") else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as err:
        language = "JSON" if key.endswith(".json") else "YAML"
        return RouterConfig(resource, key, problem=f"data.{key} is not valid {language}: {str(err).splitlines()[0]}")
    if not isinstance(document, dict):
        return RouterConfig(resource, key, problem=f"data.{key} is not a mapping")
    return RouterConfig(resource, key, document=document)


def unreadable(config: RouterConfig) -> str:
    return (f"{config.resource.label}: the router cannot start with this RouterConfig ({config.problem}); "
            "fix the document the program renders (schema: router/settings.py)")

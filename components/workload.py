"""Conventions every Kubernetes workload of the stack follows: labels, restricted pods, resources.

Pod Security Standards "restricted" (https://kubernetes.io/docs/concepts/security/pod-security-standards/)
with a read-only root filesystem: non-root numeric user, no privilege escalation, all capabilities
dropped, the RuntimeDefault seccomp profile. The namespaces enforce the same level, so a pod that
drifted from it would be refused by the API server rather than run.
"""
from __future__ import annotations

import json
import math
from typing import Optional

PART_OF = "aks-serving"
NAME_LABEL = "app.kubernetes.io/name"
COMPONENT_LABEL = "app.kubernetes.io/component"
PSS_LEVEL = "restricted"


def labels(name: str, component: str) -> dict[str, str]:
    return {NAME_LABEL: name, COMPONENT_LABEL: component, "app.kubernetes.io/part-of": PART_OF,
            "app.kubernetes.io/managed-by": "pulumi"}


def described_annotations(item, prefix: str = "") -> dict[str, str]:
    """A config item's description, tags and properties (components/config Described) as annotations, the
    maps as JSON: v1's tag keys are free text, which annotation keys could not carry as they are."""
    found = {"description": item.description, "tags": item.tags and json.dumps(item.tags, sort_keys=True),
             "properties": item.properties and json.dumps(item.properties, sort_keys=True)}
    return {f"{PART_OF}/{prefix}{key}": value for key, value in found.items() if value}


def selector(name: str, component: str) -> dict[str, str]:
    """The labels a Service, PDB or Deployment selects pods by (a subset that never changes)."""
    return {NAME_LABEL: name, COMPONENT_LABEL: component}


def namespace_labels() -> dict[str, str]:
    return {"pod-security.kubernetes.io/enforce": PSS_LEVEL, "pod-security.kubernetes.io/enforce-version": "latest",
            "pod-security.kubernetes.io/warn": PSS_LEVEL, "app.kubernetes.io/part-of": PART_OF}


def pod_security(uid: int) -> dict:
    """The pod-level half: the user and the seccomp profile, which every container inherits."""
    return {"runAsNonRoot": True, "runAsUser": uid, "runAsGroup": uid, "fsGroup": uid,
            "seccompProfile": {"type": "RuntimeDefault"}}


def container_security() -> dict:
    """The container-level half: what Kubernetes reads only per container. Each setting is stated once, where
    Kubernetes reads it (as the Pod Security Standards' own restricted example does)."""
    return {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}}


def resources(cpu: float, memory_gb: float, cpu_limit: Optional[float] = None,
              memory_gb_limit: Optional[float] = None, gpus: int = 0) -> dict:
    """Requests and limits; an unset limit equals its request (v1's cpu_cores_limit / memory_gb_limit)."""
    requests = {"cpu": _millicores(cpu), "memory": _mebibytes(memory_gb)}
    limits = {"cpu": _millicores(cpu_limit or cpu), "memory": _mebibytes(memory_gb_limit or memory_gb)}
    if gpus:
        requests["nvidia.com/gpu"] = limits["nvidia.com/gpu"] = str(gpus)
    return {"requests": requests, "limits": limits}


def _millicores(cores: float) -> str:
    return f"{max(1, round(cores * 1000))}m"


def _mebibytes(gb: float) -> str:
    # v1's memory_gb is gigabytes of 1024 MiB each.
    return f"{max(1, math.ceil(gb * 1024))}Mi"


def tmp_volume(name: str = "tmp", size: str = "256Mi") -> dict:
    """A writable /tmp for a read-only root filesystem, memory-backed so it never fills a node's disk."""
    return {"name": name, "emptyDir": {"medium": "Memory", "sizeLimit": size}}

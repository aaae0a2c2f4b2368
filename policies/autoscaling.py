"""Autoscaling: the router scales model Deployments, so no HorizontalPodAutoscaler or KEDA ScaledObject may
(the two would fight over the replica count); the router itself is scaled by an HPA on production only."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import kube
from clusters import stack_purposes
from support import LATER, UNKNOWN, Findings, Resource, Setting, get, stack_policy

_CLUSTER_PURPOSE = Setting("clusterPurpose", {
    "type": "string", "enum": ["production", "dev-test"],
    "description": "The purpose of the cluster the stack deploys to, for stacks without a ManagedCluster tagged "
                   "cluster-purpose (an attached cluster); by default read from that tag."})


@dataclass(frozen=True)
class Target:
    scaler: Resource
    workload: Optional[Resource]  # the workload in the stack it scales, if found
    component: Any  # that workload's (or, failing that, the scaler's own) app.kubernetes.io/component label
    unknown: bool  # the target cannot be told yet


def _targets(resources: list[Resource]) -> list[Target]:
    workloads = [r for r in resources if kube.is_workload(r.type)]
    by_urn = {r.urn: r for r in workloads}
    found = []
    for scaler in resources:
        if not kube.is_scaler(scaler.type):
            continue
        ref = get(scaler.props, "spec", "scaleTargetRef")
        kind = get(ref, "kind")
        if kind is None and scaler.type == kube.SCALED_OBJECT:
            kind = "Deployment"  # KEDA's default
        name, namespace = get(ref, "name"), kube.namespace_of(scaler)
        own = kube.component_of(scaler)
        if UNKNOWN in (ref, kind, name, namespace):
            # In a preview the target's name may be unknown; the engine still says what the spec depends on.
            depends = [by_urn[u] for u in scaler.property_dependencies.get("spec", ()) if u in by_urn]
            workload = depends[0] if len(depends) == 1 else None
            found.append(Target(scaler, workload, kube.component_of(workload) if workload else own, workload is None))
            continue
        workload = next((w for w in workloads if w.kind == kind and kube.name_of(w) == name
                         and kube.same_namespace(kube.namespace_of(w), namespace)), None)
        found.append(Target(scaler, workload, kube.component_of(workload) if workload else own, False))
    return found


def _describe(target: Target) -> str:
    return target.workload.label if target.workload else "its target"


def _no_model_scalers(resources: list[Resource], _config: dict, findings: Findings) -> None:
    for target in _targets(resources):
        if target.component == "model":
            findings.violation(
                f"{target.scaler.label} scales the model {_describe(target)}; the router scales model Deployments "
                "itself (busy replicas / replicas, within the service's min and max), and an HPA or KEDA would "
                "fight it over the replica count. Fix: remove the autoscaler and set the service's autoscale "
                "settings (minReplicas, maxReplicas, targetUtilization) in the stack config instead",
                target.scaler.urn)
        elif target.unknown or target.component is UNKNOWN:
            findings.cannot_decide(f"{target.scaler.label}: what it scales is not known yet, so whether it "
                                   f"targets a model Deployment cannot be told; {LATER}")


def _router_scaler_on_production(resources: list[Resource], config: dict, findings: Findings) -> None:
    targets = _targets(resources)
    router_scalers = [t for t in targets if t.component == "router"]
    purposes = stack_purposes(resources, config["clusterPurpose"])
    if purposes != {"production"}:
        for target in targets:
            if target.unknown or target.component is UNKNOWN:
                findings.cannot_decide(f"{target.scaler.label}: what it scales is not known yet, so whether it "
                                       f"targets the router cannot be told; {LATER}")
    for target in router_scalers:
        if purposes is UNKNOWN or not purposes:
            why = "is not known yet" if purposes is UNKNOWN else \
                "is not in the stack (no ManagedCluster tagged cluster-purpose; set clusterPurpose in the pack config)"
            findings.cannot_decide(f"{target.scaler.label} scales the router, and the cluster's purpose {why}")
        elif purposes != {"production"}:
            findings.violation(
                f"{target.scaler.label} scales the router {_describe(target)} on a "
                f"{'/'.join(sorted(purposes))} cluster; dev-test clusters run one router pod and no autoscaler "
                "for it. Fix: create the router HPA only when the cluster's purpose is production",
                target.scaler.urn)


POLICIES = [
    stack_policy(
        "no-hpa-on-models",
        "No HorizontalPodAutoscaler (autoscaling/v1 or v2) and no KEDA ScaledObject targets a model Deployment "
        "(app.kubernetes.io/component: model): the router scales models.",
        _no_model_scalers),
    stack_policy(
        "router-hpa-production-only",
        "An autoscaler for the router (app.kubernetes.io/component: router) exists only on production clusters.",
        _router_scaler_on_production, settings=[_CLUSTER_PURPOSE]),
]

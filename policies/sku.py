"""VM sizes and cluster capacity: the allow-list, Azure ML v1's production and dev-test rules over all of a
cluster's pools, and accelerator requests that need a pool whose size has them. SKU figures and the vCPU
math come from the rule module (`rules.vm_sizes`, `rules.capacity`)."""
from __future__ import annotations

from typing import Any

from pulumi_policy import EnforcementLevel

import kube
from clusters import AGENT_POOL, MANAGED_CLUSTER, PURPOSE_TAG, Cluster, Pool, clusters
from rules import capacity, lookup_vm_size
from support import (LATER, UNKNOWN, Findings, Resource, Setting, as_dict, as_list, get, listed, of_types,
                     resource_policy, stack_policy, strings)

_PURPOSE_TAG = Setting("purposeTag", {"type": "string", "description": "The ManagedCluster tag that holds the "
                                      "cluster's purpose (production or dev-test)."}, PURPOSE_TAG)


# ---- allowed VM sizes -----------------------------------------------------------------------------------


def _allowed_sizes(resource: Resource, config: dict, findings: Findings) -> None:
    allowed = [s for s in config["allowedVmSizes"] if isinstance(s, str)]
    allowed_lower = {s.lower() for s in allowed}
    if resource.type == MANAGED_CLUSTER:
        profiles = get(resource.props, "agentPoolProfiles")
        if profiles is UNKNOWN:
            findings.cannot_decide(f"{resource.label}: agentPoolProfiles are not known yet; {LATER}")
        pools = [(get(p, "name"), get(p, "vmSize")) for p in as_list(profiles)]
    else:
        pools = [(get(resource.props, "agentPoolName"), get(resource.props, "vmSize"))]
    for name, size in pools:
        pool = f"pool {name}" if isinstance(name, str) else "a pool"
        if size is UNKNOWN:
            findings.cannot_decide(f"{resource.label}: the VM size of {pool} is not known yet; {LATER}")
        elif not isinstance(size, str):
            findings.violation(f"{resource.label}: {pool} sets no vmSize, so AKS picks its regional default, "
                               "which this pack cannot check. Fix: set vmSize (cluster.vmSize or "
                               "cluster.nodePools[].vmSize in the stack config)")
        elif allowed and size.lower() not in allowed_lower:
            findings.violation(f"{resource.label}: {pool} uses {size}, which is not an allowed VM size "
                               f"({listed(allowed)}). Fix: pick an allowed size, or add {size} to allowedVmSizes "
                               "in the policy pack config")
        elif not allowed and lookup_vm_size(size) is None:
            findings.violation(f"{resource.label}: {pool} uses {size}, a size whose vCPUs and accelerators this "
                               "pack does not know, so capacity and GPU placement cannot be checked. Fix: pick a "
                               "size from policies/rules/vm_sizes.py, or list the allowed sizes in "
                               "allowedVmSizes in the policy pack config")


# ---- cluster capacity -----------------------------------------------------------------------------------


def _judge(cluster: Cluster, unmatched: list[Pool], purpose: str, findings: Findings) -> None:
    """Azure ML v1's rule for `purpose` over every pool of the cluster; undecided while a pool is unknown."""
    known = [p.capacity() for p in cluster.pools]
    pools = [c for c in known if c is not None]
    pending = [p for p, c in zip(cluster.pools, known) if c is None]
    # v1 checked the nodes an attached cluster has; for a created one AKS's stricter system-pool minimum
    # applies as well, but the dev-test advice (2 vCPU) is worth saying for both.
    found = capacity.purpose_findings(purpose, pools, attached=True)
    if not found:
        return
    maybe = [p for p in unmatched if p.cluster is UNKNOWN or p.cluster is None]  # perhaps this cluster's
    if pending or maybe:
        unsure = [p.label for p in pending] + [f"AgentPool {p.source.name}" for p in maybe]
        findings.cannot_decide(f"{cluster.label}: {'; '.join(f.message for f in found)} so far, but "
                               f"{listed(unsure)} cannot be counted yet (size or node count unknown, or "
                               f"cluster not known); {LATER}")
        return
    for finding in found:
        fix = ("add nodes or use a larger VM size (cluster.nodeCount, cluster.vmSize, cluster.nodePools); "
               "autoscaled pools count at their minimum") if purpose == "production" else \
              "use a larger VM size or more nodes"
        findings.violation(f"{cluster.label} is tagged {purpose}: {finding.message}. Fix: {fix}",
                           cluster.resource.urn)


def _capacity_check(purpose: str):
    def check(resources: list[Resource], config: dict, findings: Findings) -> None:
        found, unmatched = clusters(resources, config["purposeTag"])
        for cluster in found:
            if cluster.purpose is UNKNOWN:
                findings.cannot_decide(f"{cluster.label}: the {config['purposeTag']} tag is not known yet; {LATER}")
            elif cluster.purpose == purpose:
                _judge(cluster, unmatched, purpose, findings)
    return check


# ---- accelerators ---------------------------------------------------------------------------------------


def _requested(resource: Resource, spec: Any, config: dict, findings: Findings) -> tuple[dict, dict]:
    """GPU and FPGA resources the pod's containers request or limit: {resource name: container label}."""
    gpus, fpgas = {}, {}
    for container in kube.containers(spec):
        if container.spec is UNKNOWN or get(container.spec, "resources") is UNKNOWN:
            findings.cannot_decide(f"{resource.label}: the resources of {container.label} are not known yet, so "
                                   f"whether it needs a GPU pool cannot be told; {LATER}")
            continue
        for section in ("limits", "requests"):
            amounts = get(container.spec, "resources", section)
            if amounts is UNKNOWN:
                findings.cannot_decide(f"{resource.label}: resources.{section} of {container.label} are not known "
                                       f"yet, so whether it needs a GPU pool cannot be told; {LATER}")
            for name, amount in as_dict(amounts).items():
                if amount is UNKNOWN:
                    findings.cannot_decide(f"{resource.label}: the amount of {name} {container.label} asks for is "
                                           f"not known yet; {LATER}")
                    continue
                if amount in (0, "0"):
                    continue
                if name in config["gpuResources"]:
                    gpus.setdefault(name, container.label)
                elif any(name.startswith(prefix) for prefix in config["fpgaResourcePrefixes"]):
                    fpgas.setdefault(name, container.label)
    return gpus, fpgas


def _candidates(spec: Any, pools: list[Pool]) -> list[Pool]:
    """The pools whose nodes the pod's nodeSelector allows (only selector keys that some pool sets count)."""
    selector = {k: v for k, v in as_dict(get(spec, "nodeSelector")).items() if isinstance(v, str)}
    pool_keys = {k for p in pools for k in p.labels()}
    relevant = {k: v for k, v in selector.items() if k in pool_keys}
    return [p for p in pools if all(p.labels().get(k) == v for k, v in relevant.items())]


def _accelerators(resources: list[Resource], config: dict, findings: Findings) -> None:
    found, unmatched = clusters(resources)
    pools = [p for c in found for p in c.pools] + unmatched
    for resource in resources:
        if not kube.is_workload(resource.type):
            continue
        spec = kube.pod_spec(resource)
        if spec is UNKNOWN:
            findings.cannot_decide(f"{resource.label}: the pod spec is not known yet; {LATER}")
            continue
        gpus, fpgas = _requested(resource, spec, config, findings)
        for what, requested, has in (("GPUs", gpus, lambda s: s.gpus > 0), ("FPGAs", fpgas, lambda s: s.fpgas > 0)):
            if not requested:
                continue
            asks = ", ".join(f"{name} ({where})" for name, where in requested.items())
            if not pools:
                findings.cannot_decide(f"{resource.label} requests {asks}, but the stack registers no AKS node "
                                       "pools (an attached cluster?), so this pack cannot tell whether any node "
                                       f"has {what}")
                continue
            candidates = _candidates(spec, pools)
            if any(p.size is not None and has(p.size) for p in candidates):
                continue
            if any(p.size is None for p in candidates):
                findings.cannot_decide(f"{resource.label} requests {asks}; the VM size of "
                                       f"{listed(p.label for p in candidates if p.size is None)} is not known "
                                       f"(yet), so whether it has {what} cannot be told; {LATER}")
                continue
            where = listed(p.label for p in candidates) if candidates else "no pool (its nodeSelector matches none)"
            findings.violation(f"{resource.label} requests {asks}, but no node pool it can run on has {what}: "
                               f"{where}. Fix: add a node pool whose VM size has {what} (e.g. Standard_NC4as_T4_v3 "
                               f"for GPUs) and let the workload select it, or drop the {what} request",
                               resource.urn)


POLICIES = [
    resource_policy(
        "allowed-vm-sizes",
        "Node pools use VM sizes from the allow-list (by default: every size whose vCPUs and accelerators "
        "the pack knows).",
        of_types(MANAGED_CLUSTER, AGENT_POOL), _allowed_sizes,
        settings=[strings("allowedVmSizes", "VM sizes node pools may use (case-insensitive); empty: any size "
                          "in policies/rules/vm_sizes.py.")]),
    stack_policy(
        "production-cluster-capacity",
        f"A cluster tagged production has at least {capacity.PRODUCTION_MIN_VCPUS} vCPU and "
        f"{capacity.PRODUCTION_MIN_NODES} nodes across all its pools (Azure ML v1's production purpose).",
        _capacity_check("production"), settings=[_PURPOSE_TAG]),
    stack_policy(
        "devtest-cluster-capacity",
        f"A cluster tagged dev-test should have at least {capacity.DEVTEST_ADVISED_VCPUS} vCPU across its pools.",
        _capacity_check("dev-test"), settings=[_PURPOSE_TAG], enforcement=EnforcementLevel.ADVISORY),
    stack_policy(
        "accelerator-node-pool",
        "A workload that requests GPUs or FPGAs can run on a node pool of the stack whose VM size has them.",
        _accelerators,
        settings=[strings("gpuResources", "Extended resources that are GPUs.", ["nvidia.com/gpu", "amd.com/gpu"]),
                  strings("fpgaResourcePrefixes", "Prefixes of extended resources that are FPGAs.",
                          ["xilinx.com/fpga", "intel.com/fpga"])]),
]

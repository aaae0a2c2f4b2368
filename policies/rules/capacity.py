"""vCPU math and Azure ML v1's cluster-purpose rules, plus AKS's own system-pool minimum."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

# Azure ML v1 (AksCompute cluster_purpose): FastProd needs 12 vCPU over at least 3 nodes; DevTest advises 2.
PRODUCTION_MIN_VCPUS = 12
PRODUCTION_MIN_NODES = 3
DEVTEST_ADVISED_VCPUS = 2
# AKS refuses to create a system node pool on a size smaller than this.
AKS_SYSTEM_POOL_MIN_VCPUS = 2
AKS_SYSTEM_POOL_MIN_MEMORY_GIB = 4


@dataclass(frozen=True)
class PoolCapacity:
    name: str
    vm_size: str
    count: int
    vcpus_per_node: int
    memory_gib: float | None = None  # per node; None when the size is unknown and the user gave vcpusPerNode
    gpus_per_node: int = 0
    fpgas_per_node: int = 0
    mode: str = "User"  # "System" | "User"


@dataclass(frozen=True)
class Finding:
    level: str  # "error" | "warning"
    key: str  # config key it is about: "nodeCount" for totals, "vmSize" for per-node minimums
    message: str


def total_vcpus(pools: Sequence[PoolCapacity]) -> int:
    return sum(pool.count * pool.vcpus_per_node for pool in pools)


def total_nodes(pools: Sequence[PoolCapacity]) -> int:
    return sum(pool.count for pool in pools)


def describe_pools(pools: Sequence[PoolCapacity]) -> str:
    """Like "3 x Standard_D2s_v3 + 1 x Standard_NC6s_v3"; pools of the same size are added up."""
    counts: dict[str, int] = {}
    for pool in pools:
        counts[pool.vm_size] = counts.get(pool.vm_size, 0) + pool.count
    return " + ".join(f"{count} x {size}" for size, count in counts.items()) or "no node pools"


def purpose_findings(purpose: str, pools: Sequence[PoolCapacity], attached: bool) -> list[Finding]:
    """Azure ML v1's rules for a "production" or "dev-test" cluster, over the totals of all pools given."""
    vcpus, nodes, described = total_vcpus(pools), total_nodes(pools), describe_pools(pools)
    findings: list[Finding] = []
    if purpose == "production":
        if vcpus < PRODUCTION_MIN_VCPUS:
            findings.append(Finding("error", "nodeCount", f"production clusters need at least "
                                    f"{PRODUCTION_MIN_VCPUS} vCPU; {described} gives {vcpus}"))
        if nodes < PRODUCTION_MIN_NODES:
            findings.append(Finding("error", "nodeCount", f"production clusters need at least "
                                    f"{PRODUCTION_MIN_NODES} nodes; {described} gives {nodes}"))
    elif purpose == "dev-test":
        # A created cluster meets AKS's stricter system-pool minimum (system_pool_findings) instead.
        if attached and vcpus < DEVTEST_ADVISED_VCPUS:
            findings.append(Finding("warning", "nodeCount", f"dev-test clusters should have at least "
                                    f"{DEVTEST_ADVISED_VCPUS} vCPU; {described} gives {vcpus}"))
    else:
        raise ValueError(f"cluster purpose must be 'production' or 'dev-test', not {purpose!r}")
    return findings


def system_pool_findings(pool: PoolCapacity) -> list[Finding]:
    """AKS's own minimum for a system pool this program creates (attached clusters are not checked)."""
    memory = pool.memory_gib
    too_few_vcpus = pool.vcpus_per_node < AKS_SYSTEM_POOL_MIN_VCPUS
    too_little_memory = memory is not None and memory < AKS_SYSTEM_POOL_MIN_MEMORY_GIB
    if not (too_few_vcpus or too_little_memory):
        return []
    if memory is None:  # size unknown to vm_sizes: only the vCPU half can be judged
        message = (f"AKS needs at least {AKS_SYSTEM_POOL_MIN_VCPUS} vCPU per node in the system pool; "
                   f"{pool.vm_size} has {pool.vcpus_per_node} vCPU")
    else:
        message = (f"AKS needs at least {AKS_SYSTEM_POOL_MIN_VCPUS} vCPU and {AKS_SYSTEM_POOL_MIN_MEMORY_GIB} GiB "
                   f"per node in the system pool; {pool.vm_size} has {pool.vcpus_per_node} vCPU and {memory:g} GiB")
    return [Finding("error", "vmSize", message)]

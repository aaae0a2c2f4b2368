"""The AKS clusters a stack holds: ManagedClusters (created, or read with `ManagedCluster.get`), their pools
(inline agentPoolProfiles plus AgentPool resources that target them) and their purpose tag.

An AgentPool belongs to a cluster when its `resourceName` equals the cluster's (and the resource groups do
not differ), or, in a preview where the cluster's name is still unknown, when its `resourceName` depends on
that cluster resource (the engine sends property dependencies with AnalyzeStack).

AnalyzeStack gets each resource's outputs, not its inputs: azure-native's outputs name a cluster `name` (not
`resourceName`) and a pool `name` (not `agentPoolName`), and carry the cluster and resource group only in the
`id`. Both shapes are read.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Optional

from rules import PoolCapacity, VmSize, lookup_vm_size
from support import UNKNOWN, Resource, as_dict, as_list, get, whole_number

MANAGED_CLUSTER = "azure-native:containerservice:ManagedCluster"
AGENT_POOL = "azure-native:containerservice:AgentPool"
PURPOSE_TAG = "cluster-purpose"
# Azure ML v1 spelled the purposes FastProd and DevTest.
_PURPOSES = {"production": "production", "fastprod": "production", "dev-test": "dev-test", "devtest": "dev-test"}
# Node labels AKS puts on every node of a pool.
AKS_POOL_LABELS = ("agentpool", "kubernetes.azure.com/agentpool")


@dataclass
class Pool:
    source: Resource
    name: Any
    vm_size: Any
    count: Any  # the nodes the pool is guaranteed: minCount when autoscaled, else count; UNKNOWN or int
    max_count: Any
    mode: str
    node_labels: dict
    cluster: Any = None  # an AgentPool's resourceName: the name of the cluster it belongs to

    @property
    def size(self) -> Optional[VmSize]:
        return lookup_vm_size(self.vm_size) if isinstance(self.vm_size, str) else None

    @property
    def label(self) -> str:
        name = self.name if isinstance(self.name, str) else "(name not known yet)"
        size = self.vm_size if isinstance(self.vm_size, str) else "(size not known yet)"
        return f"pool {name} ({size})"

    def capacity(self) -> Optional[PoolCapacity]:
        """The rule module's view of the pool; None while its size or node count is not known."""
        size = self.size
        if size is None or not isinstance(self.count, int):
            return None
        return PoolCapacity(name=str(self.name), vm_size=size.name, count=self.count, vcpus_per_node=size.vcpus,
                            memory_gib=size.memory_gib, gpus_per_node=size.gpus, fpgas_per_node=size.fpgas,
                            mode=self.mode)

    def labels(self) -> dict:
        """The labels the pool's nodes carry (AKS's own plus the pool's nodeLabels)."""
        own = {k: self.name for k in AKS_POOL_LABELS} if isinstance(self.name, str) else {}
        return {**own, **{k: v for k, v in self.node_labels.items() if isinstance(v, str)}}


@dataclass
class Cluster:
    resource: Resource
    purpose: Any  # "production" | "dev-test" | None (no tag) | UNKNOWN | the raw tag value when unrecognised
    pools: list[Pool] = field(default_factory=list)

    @property
    def label(self) -> str:
        name = cluster_name(self.resource)
        return f"ManagedCluster {name} (Pulumi resource {self.resource.name})" if isinstance(name, str) \
            else self.resource.label


def _pool(source: Resource, profile: dict, name: Any) -> Pool:
    autoscaled = profile.get("enableAutoScaling")
    count = profile.get("count")
    if autoscaled is True and profile.get("minCount") is not None:
        count = profile.get("minCount")
    if count is None:
        count = 1  # AKS's default node count
    return Pool(source=source, name=name, vm_size=profile.get("vmSize"),
                count=UNKNOWN if count is UNKNOWN else whole_number(count),
                max_count=profile.get("maxCount"), mode=str(profile.get("mode") or "User"),
                node_labels=as_dict(profile.get("nodeLabels")))


_ID = re.compile(r"/resourcegroups/(?P<group>[^/]+)/providers/microsoft\.containerservice/managedclusters/"
                 r"(?P<cluster>[^/]+)(?:/agentpools/(?P<pool>[^/]+))?\Z", re.IGNORECASE)


def _from_id(resource: Resource, part: str) -> Any:
    value = get(resource.props, "id")
    if value is UNKNOWN:
        return UNKNOWN
    match = _ID.search(value) if isinstance(value, str) else None
    return match.group(part) if match else None


def _first(*values: Any) -> Any:
    """The first known value; UNKNOWN when none is known but one is unknown; else None."""
    if any(isinstance(v, str) for v in values):
        return next(v for v in values if isinstance(v, str))
    return UNKNOWN if any(v is UNKNOWN for v in values) else None


def cluster_name(resource: Resource) -> Any:
    """A ManagedCluster's name (input `resourceName`, output `name`), or an AgentPool's cluster's."""
    if resource.type == AGENT_POOL:
        return _first(get(resource.props, "resourceName"), _from_id(resource, "cluster"))
    return _first(get(resource.props, "resourceName"), get(resource.props, "name"), _from_id(resource, "cluster"))


def resource_group(resource: Resource) -> Any:
    return _first(get(resource.props, "resourceGroupName"), _from_id(resource, "group"))


def pool_name(resource: Resource) -> Any:
    """An AgentPool's name (input `agentPoolName`, output `name`)."""
    return _first(get(resource.props, "agentPoolName"), get(resource.props, "name"), _from_id(resource, "pool"))


def purpose_of(resource: Resource, tag: str = PURPOSE_TAG) -> Any:
    value = get(resource.props, "tags", tag)
    if value is UNKNOWN or value is None:
        return value
    return _PURPOSES.get(str(value).strip().lower(), value)


def clusters(resources: list[Resource], tag: str = PURPOSE_TAG) -> tuple[list[Cluster], list[Pool]]:
    """The stack's clusters with their pools, and the AgentPools that match none of them: pools of a cluster
    the stack does not hold (an attached one), or, while `cluster` is unknown, perhaps of one it does."""
    found = [Cluster(r, purpose_of(r, tag)) for r in resources if r.type == MANAGED_CLUSTER]
    for cluster in found:
        profiles = get(cluster.resource.props, "agentPoolProfiles")
        if profiles is UNKNOWN:
            cluster.pools.append(Pool(cluster.resource, UNKNOWN, UNKNOWN, UNKNOWN, None, "System", {}))
        for profile in as_list(profiles):
            profile = as_dict(profile)
            cluster.pools.append(_pool(cluster.resource, profile, profile.get("name")))
    unmatched = []
    for resource in resources:
        if resource.type != AGENT_POOL:
            continue
        pool = _pool(resource, resource.props, pool_name(resource))
        pool.cluster = cluster_name(resource)
        owner = _owner(resource, found)
        if owner is None:
            unmatched.append(pool)
        else:
            owner.pools.append(pool)
    return found, unmatched


def _owner(pool: Resource, found: list[Cluster]) -> Optional[Cluster]:
    name, group = cluster_name(pool), resource_group(pool)
    for cluster in found:
        other, other_group = cluster_name(cluster.resource), resource_group(cluster.resource)
        if isinstance(name, str) and isinstance(other, str) and name.lower() == other.lower() \
                and not (isinstance(group, str) and isinstance(other_group, str)
                         and group.lower() != other_group.lower()):
            return cluster
    for cluster in found:
        if cluster.resource.urn in pool.property_dependencies.get("resourceName", ()):
            return cluster
    return None


def stack_purposes(resources: list[Resource], configured: Optional[str], tag: str = PURPOSE_TAG) -> Any:
    """The purposes of the stack's clusters: {configured} when the pack config names one, else the tags of
    its ManagedClusters ("production", "dev-test"); UNKNOWN while a tag is unknown. An empty set means the
    stack holds no tagged cluster (an attached cluster, say): set clusterPurpose in the pack config then."""
    if configured:
        return {configured}
    purposes = [purpose_of(r, tag) for r in resources if r.type == MANAGED_CLUSTER]
    if any(p is UNKNOWN for p in purposes):
        return UNKNOWN
    return {p for p in purposes if p in ("production", "dev-test")}

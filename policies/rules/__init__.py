"""Pure rule module: naming patterns, VM SKU data and vCPU math.

Standard library only and relative imports only, because it is imported twice under different names:
as `rules` by the CrossGuard pack (cwd = policies/) and as `policies.rules` by components/config.py.
"""

from .capacity import (
    AKS_SYSTEM_POOL_MIN_MEMORY_GIB,
    AKS_SYSTEM_POOL_MIN_VCPUS,
    DEVTEST_ADVISED_VCPUS,
    PRODUCTION_MIN_NODES,
    PRODUCTION_MIN_VCPUS,
    Finding,
    PoolCapacity,
    describe_pools,
    purpose_findings,
    system_pool_findings,
    total_nodes,
    total_vcpus,
)
from .naming import (
    AKS_RESOURCE_ID_RULE,
    CLUSTER_NAME_PATTERN,
    DNS1123_LABEL_PATTERN,
    DNS1123_SUBDOMAIN_PATTERN,
    NAMESPACE_PATTERN,
    NODE_POOL_NAME_PATTERN,
    REGISTRY_NAME_PATTERN,
    RESERVED_CLUSTER_NAMES,
    SERVICE_NAME_PATTERN,
    STORAGE_ACCOUNT_NAME_PATTERN,
    check_cluster_name,
    check_dns1123_label,
    check_dns1123_subdomain,
    check_namespace,
    check_node_pool_name,
    check_registry_name,
    check_resource_id_for_aks,
    check_service_name,
    check_storage_account_name,
    check_version_name,
    parse_aks_resource_id,
)
from .vm_sizes import VmSize, lookup_vm_size

__all__ = [
    "AKS_RESOURCE_ID_RULE", "AKS_SYSTEM_POOL_MIN_MEMORY_GIB", "AKS_SYSTEM_POOL_MIN_VCPUS", "CLUSTER_NAME_PATTERN",
    "DEVTEST_ADVISED_VCPUS", "DNS1123_LABEL_PATTERN", "DNS1123_SUBDOMAIN_PATTERN", "NAMESPACE_PATTERN",
    "NODE_POOL_NAME_PATTERN", "PRODUCTION_MIN_NODES", "PRODUCTION_MIN_VCPUS", "REGISTRY_NAME_PATTERN",
    "RESERVED_CLUSTER_NAMES", "SERVICE_NAME_PATTERN", "STORAGE_ACCOUNT_NAME_PATTERN",
    "Finding", "PoolCapacity", "VmSize",
    "check_cluster_name", "check_dns1123_label", "check_dns1123_subdomain", "check_namespace",
    "check_node_pool_name", "check_registry_name", "check_resource_id_for_aks", "check_service_name",
    "check_storage_account_name", "check_version_name", "describe_pools", "lookup_vm_size", "parse_aks_resource_id",
    "purpose_findings", "system_pool_findings", "total_nodes", "total_vcpus",
]

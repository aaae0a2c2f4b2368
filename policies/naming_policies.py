"""Naming: AKS clusters and node pools, the registry, the storage account, Kubernetes objects, and the
services, endpoints and versions of the router's config. The rules themselves live in `rules.naming`."""
from __future__ import annotations

from typing import Any, Callable, Optional

from clusters import AGENT_POOL, MANAGED_CLUSTER
from kube import router_config, unreadable
from rules import naming
from support import LATER, UNKNOWN, Findings, Resource, as_dict, as_list, get, of_types, resource_policy

REGISTRY = "azure-native:containerregistry:Registry"
STORAGE_ACCOUNT = "azure-native:storage:StorageAccount"


def _name(findings: Findings, resource: Resource, what: str, value: Any, check: Callable[[object], Optional[str]],
          fix: str) -> None:
    """Check one name: unset names are the provider's to generate; unknown ones are checked on `pulumi up`."""
    if value is None:
        return
    if value is UNKNOWN:
        findings.cannot_decide(f"{resource.label}: {what} is not known yet; {LATER}")
        return
    problem = check(value)
    if problem:
        findings.violation(f"{resource.label}: {what} {value!r} {problem}. Fix: {fix}")


def _aks(resource: Resource, _config: dict, findings: Findings) -> None:
    rename_pool = "rename the node pool (cluster.nodePools[].name in the stack config)"
    if resource.type == MANAGED_CLUSTER:
        _name(findings, resource, "cluster name (resourceName)", get(resource.props, "resourceName"),
              naming.check_cluster_name, "rename the cluster (cluster.name in the stack config)")
        profiles = get(resource.props, "agentPoolProfiles")
        if profiles is UNKNOWN:
            findings.cannot_decide(f"{resource.label}: agentPoolProfiles are not known yet; {LATER}")
        for profile in as_list(profiles):
            _name(findings, resource, "node pool name", get(profile, "name"), naming.check_node_pool_name,
                  rename_pool)
    else:
        _name(findings, resource, "node pool name (agentPoolName)", get(resource.props, "agentPoolName"),
              naming.check_node_pool_name, rename_pool)


def _registry(resource: Resource, _config: dict, findings: Findings) -> None:
    _name(findings, resource, "registry name (registryName)", get(resource.props, "registryName"),
          naming.check_registry_name, "use 5-50 letters and digits, no hyphens (workspace.registryName in the "
          "stack config)")


def _storage(resource: Resource, _config: dict, findings: Findings) -> None:
    _name(findings, resource, "storage account name (accountName)", get(resource.props, "accountName"),
          naming.check_storage_account_name, "use 3-24 lowercase letters and digits, no hyphens "
          "(workspace.storageAccountName in the stack config)")


# Objects whose names must be DNS-1123 labels; the rest take DNS-1123 subdomains.
_LABEL_NAMED = {"Service", "Namespace"}


def _kubernetes(resource: Resource, _config: dict, findings: Findings) -> None:
    metadata = get(resource.props, "metadata")
    if metadata is UNKNOWN:
        findings.cannot_decide(f"{resource.label}: metadata is not known yet; {LATER}")
        return
    if not isinstance(metadata, dict):
        return  # not a metadata-named object (Helm releases, YAML groups)
    kind = resource.kind
    if kind == "Namespace":
        check = naming.check_namespace
    else:
        check = naming.check_dns1123_label if kind in _LABEL_NAMED else naming.check_dns1123_subdomain
    _name(findings, resource, "metadata.name", metadata.get("name"), check,
          "use lowercase letters, digits and hyphens (dots too, except for Services and Namespaces)")
    if kind != "Namespace":
        _name(findings, resource, "metadata.namespace", metadata.get("namespace"), naming.check_namespace,
              "use a namespace of lowercase letters, digits and hyphens")


def _serving(resource: Resource, _config: dict, findings: Findings) -> None:
    config = router_config(resource)
    if config is None:
        return
    if config.unknown:
        findings.cannot_decide(f"{resource.label}: the router config (data.{config.key}) is not known yet; {LATER}")
        return
    if config.problem:
        findings.violation(unreadable(config))
        return
    fix = "rename it in the stack config: 3-32 lowercase letters, digits and hyphens, starting with a letter"
    for service in as_dict(config.document.get("services")):
        _name(findings, resource, "service name", service, naming.check_service_name, fix)
    for endpoint, spec in as_dict(config.document.get("endpoints")).items():
        _name(findings, resource, "endpoint name", endpoint, naming.check_service_name, fix)
        for version in as_dict(get(spec, "versions")):
            _name(findings, resource, f"endpoint {endpoint}: version name", version, naming.check_version_name,
                  "rename the version: lowercase letters, digits and hyphens, starting with a letter")


POLICIES = [
    resource_policy(
        "aks-names",
        "AKS cluster names are 3-24 letters, digits and hyphens, start with a letter and end with a letter or "
        "digit; node pool names are 1-12 lowercase letters and digits starting with a letter.",
        of_types(MANAGED_CLUSTER, AGENT_POOL), _aks),
    resource_policy(
        "registry-name",
        "Container registry names are 5-50 letters and digits.", of_types(REGISTRY), _registry),
    resource_policy(
        "storage-account-name",
        "Storage account names are 3-24 lowercase letters and digits.", of_types(STORAGE_ACCOUNT), _storage),
    resource_policy(
        "kubernetes-names",
        "Kubernetes object names are DNS-1123 subdomains (Services and Namespaces: DNS-1123 labels); "
        "namespaces are DNS-1123 labels.",
        lambda t: t.startswith("kubernetes:"), _kubernetes),
    resource_policy(
        "serving-names",
        "Service and endpoint names are 3-32 characters matching ^[a-z]([-a-z0-9]*[a-z0-9])?$; endpoint version "
        "names match the same pattern (the service a version runs as, <endpoint>-<version>, takes the full rule).",
        of_types("kubernetes:core/v1:ConfigMap"), _serving),
]

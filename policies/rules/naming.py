"""Naming rules, written once for config validation and the policy pack.

Each check returns None when the value is fine, or a rule sentence without the key path ("must be ...");
the caller prefixes the key. Patterns end in \\Z, not $, so "name\\n" fails with .match() as well.
"""

from __future__ import annotations

import re

# Azure ML v1 compute (AksCompute) names.
CLUSTER_NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9-]{1,22}[A-Za-z0-9]\Z")
RESERVED_CLUSTER_NAMES = ("amlcompute", "local", "containerinstance")
# Azure ML v1 service names; v1 used the same rule for endpoint and endpoint-version names.
SERVICE_NAME_PATTERN = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?\Z")
DNS1123_LABEL_PATTERN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?\Z")
DNS1123_SUBDOMAIN_PATTERN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\Z")
# Azure ML v1's namespace rule (AksWebservice.deploy_configuration): a DNS-1123 label.
NAMESPACE_PATTERN = re.compile(r"^[a-z0-9]([a-z0-9-]{,61}[a-z0-9])?\Z")
REGISTRY_NAME_PATTERN = re.compile(r"^[A-Za-z0-9]{5,50}\Z")
STORAGE_ACCOUNT_NAME_PATTERN = re.compile(r"^[a-z0-9]{3,24}\Z")
# AKS Linux node pools; Windows pools allow only 6 characters, but this project runs Linux pools.
NODE_POOL_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9]{0,11}\Z")

AKS_RESOURCE_ID_RULE = ("must be an AKS resource ID: /subscriptions/<subscription>/resourceGroups/<group>"
                        "/providers/Microsoft.ContainerService/managedClusters/<name>")


def _check(value: object, pattern: re.Pattern[str], rule: str, lengths: range | None = None) -> str | None:
    if not isinstance(value, str) or not pattern.match(value):
        return rule
    if lengths is not None and len(value) not in lengths:
        return rule
    return None


def check_cluster_name(name: object) -> str | None:
    problem = _check(name, CLUSTER_NAME_PATTERN, "must be 3-24 characters of letters, digits and hyphens, "
                                                 "start with a letter and end with a letter or digit")
    if problem is None and name.lower() in RESERVED_CLUSTER_NAMES:
        return "must not be a name Azure ML reserves (" + ", ".join(RESERVED_CLUSTER_NAMES) + ")"
    return problem


def check_service_name(name: object) -> str | None:
    """Service, endpoint and endpoint-version names."""
    return _check(name, SERVICE_NAME_PATTERN, "must be 3-32 characters of lowercase letters, digits and hyphens, "
                                              "start with a letter and end with a letter or digit", range(3, 33))


def check_version_name(name: object) -> str | None:
    """An endpoint version's own name: the service-name pattern without its length rule (short names like v1
    are fine); the service the version runs as, `<endpoint>-<version>`, takes check_service_name."""
    return _check(name, SERVICE_NAME_PATTERN, "must be lowercase letters, digits and hyphens, "
                                              "start with a letter and end with a letter or digit")


def check_dns1123_label(name: object) -> str | None:
    return _check(name, DNS1123_LABEL_PATTERN, "must be a DNS-1123 label: at most 63 lowercase letters, digits "
                                               "and hyphens, starting and ending with a letter or digit", range(1, 64))


def check_dns1123_subdomain(name: object) -> str | None:
    return _check(name, DNS1123_SUBDOMAIN_PATTERN, "must be a DNS-1123 subdomain: at most 253 characters of "
                                                   "dot-separated lowercase labels (letters, digits, hyphens), each "
                                                   "starting and ending with a letter or digit", range(1, 254))


def check_namespace(name: object) -> str | None:
    return _check(name, NAMESPACE_PATTERN, "must be at most 63 lowercase letters, digits and hyphens, "
                                           "starting and ending with a letter or digit")


def check_registry_name(name: object) -> str | None:
    return _check(name, REGISTRY_NAME_PATTERN, "must be 5-50 letters and digits")


def check_storage_account_name(name: object) -> str | None:
    return _check(name, STORAGE_ACCOUNT_NAME_PATTERN, "must be 3-24 lowercase letters and digits")


def check_node_pool_name(name: object) -> str | None:
    return _check(name, NODE_POOL_NAME_PATTERN, "must be 1-12 lowercase letters and digits, starting with a letter")


def _aks_id_parts(resource_id: object) -> list[str] | None:
    # Same test as Azure ML v1: split on "/" gives 9 parts ("" before the leading slash), part 6 is the provider.
    if not isinstance(resource_id, str):
        return None
    parts = resource_id.split("/")
    if len(parts) != 9 or parts[0] != "" or not all(parts[1:]):
        return None
    fixed = [(1, "subscriptions"), (3, "resourcegroups"), (5, "providers"),
             (6, "microsoft.containerservice"), (7, "managedclusters")]
    if any(parts[i].lower() != word for i, word in fixed):
        return None
    return parts


def check_resource_id_for_aks(resource_id: object) -> str | None:
    return None if _aks_id_parts(resource_id) else AKS_RESOURCE_ID_RULE


def parse_aks_resource_id(resource_id: str) -> tuple[str, str, str]:
    """(subscription, resource group, cluster name); ValueError with the rule sentence when malformed."""
    parts = _aks_id_parts(resource_id)
    if parts is None:
        raise ValueError(f"{resource_id!r} {AKS_RESOURCE_ID_RULE}")
    return parts[2], parts[4], parts[8]

"""Which Kubernetes versions AKS supports in a region, asked of ARM before anything is created.

A `cluster.kubernetesVersion` AKS no longer offers fails the cluster's creation after the workspace is made;
an attached cluster on a version out of support keeps running but AKS no longer patches it. The program asks
`GET /subscriptions/{id}/providers/Microsoft.ContainerService/locations/{region}/kubernetesVersions` (the list
`az aks get-versions` prints) with the deploying identity's ARM token; the SDK has no invoke for it.
"""
from __future__ import annotations

from typing import Optional

import requests

API_VERSION = "2024-09-01"
ARM = "https://management.azure.com"


def fetch_versions(subscription: str, location: str, token: str) -> list[dict]:
    """The region's `values`: each minor `version` with its `patchVersions` and `isPreview`."""
    url = (f"{ARM}/subscriptions/{subscription}/providers/Microsoft.ContainerService/locations/{location}"
           f"/kubernetesVersions")
    response = requests.get(url, params={"api-version": API_VERSION}, headers={"Authorization": f"Bearer {token}"},
                            timeout=30)
    response.raise_for_status()
    return response.json().get("values", [])


def supported_minors(values: list[dict]) -> list[str]:
    """GA minors AKS offers (preview ones are not for a production inference cluster), oldest first."""
    minors = {v["version"] for v in values if v.get("version") and not v.get("isPreview")}
    return sorted(minors, key=lambda m: tuple(int(p) for p in m.split(".")))


def minor_of(version: str) -> str:
    return ".".join(version.split(".")[:2])


def version_problem(version: Optional[str], values: list[dict], location: str) -> Optional[str]:
    """The rule sentence when `version` (1.33 or 1.33.2) is not one AKS offers in `location`; None when fine."""
    if not version or not values:
        return None
    minors = supported_minors(values)
    if minor_of(version) not in minors:
        return (f"Kubernetes {version} is not supported by AKS in {location} (supported: {', '.join(minors)}); "
                "AKS offers each minor for about a year")
    patches = next((v.get("patchVersions") or {} for v in values if v.get("version") == minor_of(version)), {})
    if version.count(".") == 2 and patches and version not in patches:
        return f"Kubernetes {version} is not a patch AKS offers in {location} (for {minor_of(version)}: {', '.join(sorted(patches))})"
    return None

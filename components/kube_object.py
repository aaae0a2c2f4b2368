"""Kubernetes objects a stack has one of per model service, registered without the typed SDK layer.

`k8s.apps.v1.Deployment(...)` and `k8s.apiextensions.CustomResource(api_version="apps/v1",
kind="Deployment", ...)` register the same type token, `kubernetes:apps/v1:Deployment`, with the same
inputs: the provider, the state, previews, the provider's await logic and the policy pack cannot tell
them apart. The typed class also walks every nested key through type hints on the way in, builds typed
objects from the returned state on the way out, and adds aliases for API versions (extensions/v1beta1
...) this project never used, each of which costs URN work under a parent. Measured under the mocks, a
Deployment inside a component costs about 12 ms through the typed class and 4.6 ms this way; with a
thousand services that is most of the program's time (bench/program_cost.py). Nothing is lost in checking:
the specs are plain camelCase dicts either way, and the tests validate every object against the
Kubernetes schema for the stack's version (kubernetes-validate --strict).
"""
from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s


def kube_object(name: str, api_version: str, kind: str, metadata: dict, spec: dict,
                opts: pulumi.ResourceOptions) -> pulumi.CustomResource:
    """A `kind` object whose content is `metadata` and `spec` (Deployment, Service, PodDisruptionBudget, ...)."""
    return k8s.apiextensions.CustomResource(name, api_version=api_version, kind=kind, metadata=metadata, spec=spec,
                                            opts=opts)

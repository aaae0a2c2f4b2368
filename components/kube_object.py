"""Kubernetes objects a stack has one of per model service, registered without the typed SDK layer.

`k8s.apps.v1.Deployment(...)` registers `kubernetes:apps/v1:Deployment` with camelCase inputs
(`apiVersion`, `kind`, `metadata`, `spec`); `kube_object` registers the same token with the same inputs
through `pulumi.CustomResource`, so the provider, the state, previews, the provider's await logic and the
policy pack cannot tell them apart. The typed class also walks every nested key through type hints on the
way in, builds typed objects from the returned state on the way out, and adds aliases for API versions
(extensions/v1beta1 ...) this project never used, each of which costs URN work under a parent. Measured
under the mocks, a Deployment inside a component costs about 12 ms through the typed class and under
5 ms this way; with a thousand services that is most of the program's time (bench/program_cost.py).
Nothing is lost in checking: the objects are plain camelCase dicts either way, and the tests validate every
one against the Kubernetes schema for the stack's version (kubernetes-validate --strict).

The token is what the provider parses back into group, version and kind (its `gvkFromURN` wants
`<group>/<version>`, `core` for the core group): `v1` objects are `kubernetes:core/v1:<Kind>`.
pulumi-kubernetes' own generic class would register `kubernetes:v1:Service`, which the provider rejects.
"""
from __future__ import annotations

from typing import Any, Optional

import pulumi
from pulumi_kubernetes import _utilities as k8s_sdk

# The provider plugin version the typed classes ask for (their default resource options).
PROVIDER_VERSION = k8s_sdk.get_version()
SECRET_FIELDS = ("data", "stringData")


def type_token(api_version: str, kind: str) -> str:
    """`kubernetes:apps/v1:Deployment`, `kubernetes:core/v1:Service`: the typed classes' tokens."""
    group_version = api_version if "/" in api_version else f"core/{api_version}"
    return f"kubernetes:{group_version}:{kind}"


def kube_object(name: str, api_version: str, kind: str, fields: dict[str, Any], *, parent: pulumi.Resource,
                depends_on: Optional[list[pulumi.Resource]] = None) -> pulumi.CustomResource:
    """A `kind` object whose top-level fields besides apiVersion and kind are `fields` (metadata, spec, ...),
    a child of `parent` (whose provider it inherits)."""
    props = {"apiVersion": api_version, "kind": kind, **fields}
    secret_outputs = None
    if kind == "Secret":
        # As the typed Secret does: the values are secret in the inputs, and so is what the provider reads
        # back (it returns `data`, base64 of `stringData`, which is no less secret). Each value is wrapped
        # on its own: Output.secret of the whole map would first split it into an Output per entry and key.
        secret_outputs = list(SECRET_FIELDS)
        props.update({field: {key: pulumi.Output.secret(value) for key, value in props[field].items()}
                      for field in SECRET_FIELDS if field in props})
    # Options built once, not merged: ResourceOptions.merge copies both sides, a cost per object.
    opts = pulumi.ResourceOptions(parent=parent, depends_on=depends_on, version=PROVIDER_VERSION,
                                  additional_secret_outputs=secret_outputs)
    return pulumi.CustomResource(type_token(api_version, kind), name, props, opts)

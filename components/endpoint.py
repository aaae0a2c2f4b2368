"""ModelEndpoint: v1's AksEndpoint, up to six versions behind one scoring URI, split by traffic share.

Each version runs as its own ModelService named `<endpoint>-<version>` (so two endpoints may both have
a `v1`); the traffic table, the default version and the control version go into the router config
(components/router_config.py). The endpoint, not its versions, has the auth: one set of keys for the URI.
"""
from __future__ import annotations

from typing import Callable, Optional

import pulumi

from components.config import Endpoint, version_service_name
from components.keys import ServiceKeys
from components.model_service import ModelService
from components.workload import PART_OF, described_annotations

ENDPOINT_ANNOTATION = f"{PART_OF}/endpoint"

ServiceFactory = Callable[..., ModelService]  # (service name, version spec, opts, annotations=...)


class ModelEndpoint(pulumi.ComponentResource):
    versions: dict[str, ModelService]
    traffic: dict[str, float]  # each version's effective share, percent (the default takes the rest)
    primary_key: Optional[pulumi.Output[str]]  # secret
    secondary_key: Optional[pulumi.Output[str]]  # secret

    def __init__(self, name: str, endpoint: Endpoint, *, make_service: ServiceFactory,
                 router_namespace: pulumi.Input[str], opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("aks-serving:index:ModelEndpoint", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        # Each version's objects name their endpoint and carry its description, tags and properties.
        annotations = {ENDPOINT_ANNOTATION: name, **described_annotations(endpoint, prefix="endpoint-")}
        self.versions = {version: make_service(version_service_name(name, version), spec, child,
                                               annotations=annotations)
                         for version, spec in endpoint.versions.items()}
        self.traffic = endpoint.effective_traffic()
        self.primary_key = self.secondary_key = None
        if endpoint.auth_mode == "key":
            keys = ServiceKeys(f"{name}-keys", name, endpoint.keys, router_namespace, opts=child)
            self.primary_key, self.secondary_key = keys.primary_key, keys.secondary_key
        self.register_outputs({"traffic": self.traffic, "defaultVersion": endpoint.default_version})

"""Everything that serves models on the cluster, wired from the stack config.

Order matters only through dependencies: the models' identity and namespaces, the images, the router
(whose namespace holds the keys), then one ModelService per service and per endpoint version.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pulumi

from components import app_insights
from components.cluster import ModelCluster
from components.config import DeploymentSpec, ServiceSpec, StackConfig, version_service_name
from components.endpoint import ModelEndpoint
from components.image import RegistryTarget, image_of, images_for
from components.keys import TokenSigningKey
from components.model_service import Images, ModelDataTarget, ModelService, Placement
from components.model_store import ModelStore
from components.pinned_image import by_digest
from components.plumbing import DEVICE_PLUGIN_IMAGE, ModelsNamespace, device_plugin
from components.router import Router, uses_token_auth
from components.source_image import SourceImage
from components.webservice_info import endpoint_info, service_info
from components.workload import labels
from components.workspace import Workspace
from policies.rules import capacity


@dataclass
class Serving:
    router: Router
    services: dict[str, ModelService]
    endpoints: dict[str, ModelEndpoint]
    signing_key: Optional[TokenSigningKey]


def deploy_serving(cfg: StackConfig, root: Path, workspace: Workspace, cluster: ModelCluster,
                   pools: list[capacity.PoolCapacity], router_config: str) -> Serving:
    """`router_config` is router_config_text(cfg), which main() checks before anything is created."""
    on_cluster = pulumi.ResourceOptions(provider=cluster.provider)
    store = ModelStore("models", root=root, resource_group_name=workspace.resource_group_name,
                       location=cfg.workspace.location, storage_account_id=workspace.storage_account_id,
                       storage_account_name=workspace.storage_account_name,
                       container_name=workspace.models_container_name, oidc_issuer_url=cluster.oidc_issuer_url,
                       namespaces=cfg.models_namespaces())
    namespaces = {ns: ModelsNamespace(f"models-{ns}", ns, router_namespace=cfg.router.namespace,
                                      client_id=store.client_id, tenant_id=store.tenant_id, opts=on_cluster)
                  for ns in cfg.models_namespaces()}
    model_data = ModelDataTarget(
        pulumi.Output.concat(workspace.blob_endpoint, workspace.model_data_container_name), store.subscription_id,
        workspace.resource_group_name, cfg.workspace.name, store.grant_model_data(workspace.model_data_container_name)
    ) if any(spec.collect_model_data for _, _, spec in cfg.deployments()) else None
    registry = RegistryTarget(workspace.registry_login_server, workspace.registry_id)
    environment_images = images_for(cfg, root, registry)
    # By environment name, hashed once each (the hash reads the conda file).
    image_refs = {env: image_of(cfg, root, environment_images, env).image_ref
                  for env in {spec.environment for _, _, spec in cfg.deployments()}}
    fetcher = SourceImage("fetcher-image", root / "fetcher", registry, cfg.images.builder)
    signing_key = TokenSigningKey("token-signing") if uses_token_auth(cfg) else None
    # Application Insights (enableAppInsights): the connection string as a Secret beside the router and
    # beside each model that records to it; nothing for a stack where no service asks for it.
    insights_namespaces = app_insights.models_namespaces_with_app_insights(cfg)
    insights = workspace.app_insights_connection_string if insights_namespaces else None
    for ns in insights_namespaces:
        app_insights.connection_secret(f"app-insights-{ns}", namespaces[ns].name, insights,
                                       labels("app-insights", "model"), on_cluster)
    router = Router("router", cfg, config_json=router_config,
                    image=SourceImage("router-image", root / "router", registry, cfg.images.builder).image_ref,
                    location=cfg.cluster.location or cfg.workspace.location,
                    models_namespaces={n: ns.namespace for n, ns in namespaces.items()},
                    token_public_key=signing_key.public_key_pem if signing_key else None,
                    app_insights_connection_string=insights, opts=on_cluster)

    def make_service(name: str, spec: DeploymentSpec, opts: pulumi.ResourceOptions,
                     auth: Optional[ServiceSpec] = None, annotations: Optional[dict] = None) -> ModelService:
        # The namespace's name as an Output of the Namespace: every object in it waits for it to exist.
        return ModelService(
            name, spec, namespace=namespaces[cfg.models_namespace_of(spec)].name,
            images=Images(image_refs[spec.environment], fetcher.image_ref),
            store=store, blob_endpoint=workspace.blob_endpoint, container_name=workspace.models_container_name,
            placement=Placement.of(spec, pools, cfg.cluster.attached), router_namespace=router.namespace, auth=auth,
            model_data=model_data, annotations=annotations, opts=opts)

    # A loop, not a comprehension: the SDK records every frame on the stack for each registration (its source
    # position), and a comprehension's frame is one more for each of a service's objects.
    services = {}
    for name, spec in cfg.services.items():
        services[name] = make_service(name, spec, on_cluster, auth=spec)
    endpoints = {name: ModelEndpoint(name, endpoint, router_namespace=router.namespace, opts=on_cluster,
                                     make_service=make_service)
                 for name, endpoint in cfg.endpoints.items()}
    if any(p.gpus_per_node for p in pools):
        if cfg.cluster.attached:
            pulumi.log.warn("cluster: the attached cluster has GPU pools; make sure the NVIDIA device plugin runs "
                            "on them (this stack installs it only on clusters it creates)")
        else:
            device_plugin("nvidia-device-plugin", by_digest(DEVICE_PLUGIN_IMAGE), on_cluster)
    return Serving(router, services, endpoints, signing_key)


def scoring_outputs(serving: Serving, cfg: StackConfig) -> dict:
    """Per service and endpoint what v1's Webservice exposed: scoring and swagger URIs, auth, App Insights and
    data collection, scaling and resources, description, tags and properties (components/webservice_info.py)."""
    router, stack = serving.router, pulumi.get_stack()
    services = {name: service_info(cfg, name, spec, stack) for name, spec in cfg.services.items()}
    endpoints = {name: endpoint_info(cfg, name, e, stack) for name, e in cfg.endpoints.items()}

    def tables(host: Optional[str]) -> dict:
        def uri(path: str) -> Optional[str]:
            return f"{router.scheme}://{host}/api/v1/{path}" if host else None
        with_uris = {"services": {}, "endpoints": {}}
        for name, info in services.items():
            with_uris["services"][name] = {"scoringUri": uri(f"service/{name}/score"),
                                           "swaggerUri": uri(f"service/{name}/swagger.json"), **info}
        for name, info in endpoints.items():
            default = version_service_name(name, info["defaultVersion"])
            with_uris["endpoints"][name] = {"scoringUri": uri(f"endpoint/{name}/score"),
                                            "swaggerUri": uri(f"service/{default}/swagger.json"), **info}
        return with_uris

    # One Output for every URI (the router's host), not two per service.
    both = router.host.apply(tables)
    return {"services": both["services"], "endpoints": both["endpoints"]}


def key_outputs(serving: Serving) -> pulumi.Output[dict]:
    """Every key-auth service's and endpoint's keys, as one secret (v1's get_keys())."""
    owners = [(name, owner) for name, owner in [*serving.services.items(), *serving.endpoints.items()]
              if owner.primary_key is not None]
    keys = [key for _, owner in owners for key in (owner.primary_key, owner.secondary_key)]
    # One Output over every key (a dict of Outputs would become one Output per entry, then one per dict).
    # It is secret because every key is (components/keys.py); Output.secret around it would split the
    # finished table into an Output per entry again. The tests check the export is secret.
    return pulumi.Output.all(*keys).apply(lambda values: {
        name: {"primaryKey": values[2 * i], "secondaryKey": values[2 * i + 1]} for i, (name, _) in enumerate(owners)})

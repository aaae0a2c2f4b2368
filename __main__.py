"""aks-serving: load the stack config, build the components, export the outputs."""
from pathlib import Path

import pulumi
from pulumi.runtime import is_config_secret

from components.cluster import ModelCluster, check_kubernetes_version, read_attached_cluster
from components.config import ConfigError, config_warnings, load_pulumi_config
from components.config.files import missing_files
from components.docker_build import daemon_problem as docker_daemon_problem
from components.router import router_config_text
from components.serving import deploy_serving, key_outputs, scoring_outputs
from components.workspace import Workspace

ROOT = Path(__file__).resolve().parent


def main() -> None:
    # Every config error, including an attached cluster's, is raised here, before any resource exists.
    try:
        cfg = load_pulumi_config(pulumi.Config(), lambda section: is_config_secret(f"aks-serving:{section}"),
                                 stack_file=ROOT / f"Pulumi.{pulumi.get_stack()}.yaml")
        if problems := missing_files(cfg, ROOT):
            raise ConfigError(problems)
        attached = read_attached_cluster(cfg) if cfg.cluster.attached else None
        check_kubernetes_version(cfg)
        router_config = router_config_text(cfg)
    except ConfigError as err:
        raise pulumi.RunError(str(err)) from None
    # images.builder docker on a machine where no Docker daemon answers: one line, before anything is created.
    if cfg.images.builder == "docker" and (problem := docker_daemon_problem()):
        raise pulumi.RunError(problem)
    for warning in config_warnings(cfg) + (attached.warnings if attached else []):
        pulumi.log.warn(warning)

    production = cfg.cluster.purpose == "production"
    workspace = Workspace("workspace", cfg.workspace, production=production,
                          retain_group=cfg.cluster.retained and not cfg.cluster.resource_group)
    cluster = ModelCluster(
        "cluster", cfg.cluster, resource_group_name=cfg.cluster.resource_group or workspace.resource_group_name,
        location=cfg.workspace.location, log_analytics_workspace_id=workspace.log_analytics_workspace_id,
        attached=attached, load_balancer_subnet=cfg.router.load_balancer.subnet)
    if attached is None or attached.kubelet_object_id:
        workspace.grant_pull("cluster-acr-pull", cluster.kubelet_object_id)
        if cfg.workspace.global_registry:  # images found there are pulled from there
            workspace.grant_pull("cluster-acr-pull-global", cluster.kubelet_object_id, cfg.workspace.global_registry,
                                 cfg.workspace.global_registry_subscription)
    else:
        pulumi.log.warn("cluster: the attached cluster has no kubelet identity; grant it AcrPull on the registry")
    serving = deploy_serving(cfg, ROOT, workspace, cluster, attached.pools if attached else cfg.cluster.pools(),
                             router_config)

    pulumi.export("clusterName", cluster.cluster_name)
    pulumi.export("clusterPurpose", cluster.purpose)
    pulumi.export("nodeCount", cluster.node_count)
    pulumi.export("totalVcpus", cluster.total_vcpus)
    pulumi.export("nodePools", cluster.pools)
    pulumi.export("kubeconfig", cluster.kubeconfig)
    pulumi.export("registryLoginServer", workspace.registry_login_server)
    pulumi.export("modelsStorageAccount", workspace.storage_account_name)
    pulumi.export("routerAddress", serving.router.address)
    pulumi.export("routerNamespace", serving.router.namespace)
    uris = scoring_outputs(serving, cfg)
    pulumi.export("services", uris["services"])
    pulumi.export("endpoints", uris["endpoints"])
    pulumi.export("keys", key_outputs(serving))
    if serving.signing_key is not None:
        pulumi.export("tokenSigningKey", serving.signing_key.private_key_pem)


main()

"""The inference cluster: an AKS cluster created here (hardened) or an existing one attached.

Either way the component ends in the same place: a Kubernetes provider that logs in without a person
present, and outputs (purpose, nodes, vCPUs, pools and their accelerators) the rest of the stack reads.
"""
from __future__ import annotations

import base64
import functools
from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s
from pulumi_azure_native import authorization, containerservice, managedidentity

from components import aks_versions
from components.aks_versions import version_problem
from components.cluster_access import grant_deployer
from components.config import Cluster, ConfigError, StackConfig, check_attached_pools, pool_capacity
from components.config.cluster import aks_pool_name
from components.container_insights import container_insights
from components.roles import role_definition_id
from components.kubeconfig import rewrite_kubeconfig
from policies.rules import capacity, naming
from policies.rules.vm_sizes import lookup_vm_size

# Taints keep work off pools it does not belong on: add-ons only on the system pool once a user pool
# exists, and only GPU models (which tolerate it) on GPU pools.
SYSTEM_TAINT = "CriticalAddonsOnly=true:NoSchedule"
GPU_TAINT = "nvidia.com/gpu=present:NoSchedule"
POOL_LABEL = "aks-serving/pool"
ACCELERATOR_LABEL = "aks-serving/accelerator"
NETWORK_CONTRIBUTOR_ROLE = "4d97b98b-1d4f-4787-a291-c67834d212e7"  # built-in Network Contributor
MANAGED_IDENTITY_OPERATOR_ROLE = "f1a07417-d97a-45cb-824c-7a7467783830"  # built-in Managed Identity Operator


@dataclass(frozen=True)
class ClusterIdentities:
    control_plane: managedidentity.UserAssignedIdentity
    kubelet: managedidentity.UserAssignedIdentity  # pulls images (AcrPull), as every node
    grants: list  # what the control plane must hold before the cluster is created


@dataclass(frozen=True)
class AttachedCluster:
    """What was read of an existing cluster before anything was registered."""

    resource_group: str
    name: str
    location: str
    pools: list[capacity.PoolCapacity]
    entra: bool
    kubelet_object_id: Optional[str]
    oidc_issuer_url: Optional[str]
    warnings: list[str]


def read_attached_cluster(cfg: StackConfig) -> AttachedCluster:
    """Read the cluster to attach with blocking invokes, so its rules fail before any resource exists."""
    c = cfg.cluster
    key = "resourceId" if c.resource_id else "name"
    if c.resource_id:
        subscription, resource_group, name = naming.parse_aks_resource_id(c.resource_id)
        current = authorization.get_client_config().subscription_id
        if subscription.lower() != current.lower():
            raise ConfigError([f"cluster.resourceId: the cluster is in subscription {subscription} but the "
                               f"azure-native provider targets {current}; set azure-native:subscriptionId"])
    else:
        resource_group, name = c.resource_group, c.name
    try:
        found = containerservice.get_managed_cluster(resource_group_name=resource_group, resource_name=name)
    except Exception as err:  # the invoke's own error says why (not found, no permission)
        raise ConfigError([f"cluster.{key}: cannot read AKS cluster {name} in {resource_group}: {err}"]) from None
    problems = _attach_problems(found, resource_group, name, key)
    if problems:
        raise ConfigError(problems)
    pools, warnings = [], []
    for profile in found.agent_pool_profiles or []:
        if lookup_vm_size(profile.vm_size) is None and c.vcpus_per_node is None:
            warnings.append(f"cluster: pool {profile.name} is {profile.vm_size}, a size this tool does not know; "
                            "its capacity is not checked (set cluster.vcpusPerNode)")
            continue
        pools.append(pool_capacity(profile.name, profile.vm_size, profile.count or 0, c.vcpus_per_node,
                                   str(profile.mode or "User")))
    warnings += check_attached_pools(cfg, pools)
    kubelet = (found.identity_profile or {}).get("kubeletidentity")
    return AttachedCluster(
        resource_group=resource_group, name=name, location=found.location, pools=pools,
        entra=bool(found.aad_profile and found.aad_profile.managed),
        kubelet_object_id=kubelet.object_id if kubelet else None,
        oidc_issuer_url=found.oidc_issuer_profile.issuer_url if found.oidc_issuer_profile else None,
        warnings=warnings,
    )


def _attach_problems(found, resource_group: str, name: str, key: str) -> list[str]:
    """What an attached cluster lacks that the models need, each with the `az aks` command that fixes it."""
    problems = []
    oidc = found.oidc_issuer_profile
    workload = found.security_profile.workload_identity if found.security_profile else None
    missing = [flag for flag, ok in (("--enable-oidc-issuer", oidc and oidc.enabled and oidc.issuer_url),
                                     ("--enable-workload-identity", workload and workload.enabled)) if not ok]
    if missing:
        problems.append(f"cluster.{key}: AKS cluster {name} lacks the OIDC issuer and workload identity that model "
                        f"pods read their files with; run `az aks update -g {resource_group} -n {name} "
                        f"{' '.join(missing)}`")
    version = found.current_kubernetes_version or found.kubernetes_version
    if problem := version_problem(version, kubernetes_versions(found.location), found.location):
        problems.append(f"cluster.{key}: AKS cluster {name} runs {problem}; upgrade it with `az aks upgrade -g "
                        f"{resource_group} -n {name} --kubernetes-version <a supported version>`")
    return problems


def kubernetes_versions(location: str) -> list[dict]:
    """The region's offered versions, or [] when ARM cannot be asked (the check is skipped, with a warning)."""
    try:
        client = authorization.get_client_config()
        token = authorization.get_client_token().token
        return aks_versions.fetch_versions(client.subscription_id, location, token)
    except Exception as err:  # a network or permission problem must not block a deployment that may be fine
        pulumi.log.warn(f"cluster: could not read the Kubernetes versions AKS offers in {location} ({err}); "
                        "the version is not checked")
        return []


def check_kubernetes_version(cfg: StackConfig) -> None:
    """A pinned `cluster.kubernetesVersion` AKS does not offer, refused before anything is created."""
    c = cfg.cluster
    if c.attached or not c.kubernetes_version:
        return
    location = c.location or cfg.workspace.location
    if problem := version_problem(c.kubernetes_version, kubernetes_versions(location), location):
        raise ConfigError([f"cluster.kubernetesVersion: {problem}; pick one of them or leave it unset (AKS's default)"])


class ModelCluster(pulumi.ComponentResource):
    """An AKS inference cluster (created or attached) and a Kubernetes provider for it."""

    cluster_name: pulumi.Output[str]
    resource_group_name: pulumi.Output[str]
    purpose: pulumi.Output[str]
    node_count: pulumi.Output[int]
    total_vcpus: pulumi.Output[int]
    pools: pulumi.Output[list]
    kubelet_object_id: pulumi.Output[Optional[str]]
    oidc_issuer_url: pulumi.Output[Optional[str]]
    kubeconfig: pulumi.Output[str]  # secret
    provider: k8s.Provider

    def __init__(self, name: str, config: Cluster, *, resource_group_name: pulumi.Input[str],
                 location: str, log_analytics_workspace_id: pulumi.Input[str],
                 attached: Optional[AttachedCluster] = None, load_balancer_subnet: Optional[str] = None,
                 opts: Optional[pulumi.ResourceOptions] = None):
        """`load_balancer_subnet`: the subnet of the cluster's VNet an internal load balancer takes its address in."""
        super().__init__("aks-serving:index:ModelCluster", name, None, opts)
        self._name, self._config = name, config
        if config.attached:
            if attached is None:
                raise ValueError("an attached cluster must be read with read_attached_cluster first")
            pool_list = attached.pools
            self.cluster_name = pulumi.Output.from_input(attached.name)
            self.resource_group_name = pulumi.Output.from_input(attached.resource_group)
            self.kubelet_object_id = pulumi.Output.from_input(attached.kubelet_object_id)
            self.oidc_issuer_url = pulumi.Output.from_input(attached.oidc_issuer_url)
            entra = attached.entra
            user_pools = []
        else:
            pool_list = config.pools()
            subnet_id = self._subnet_id(resource_group_name)  # every pool's nodes go in the same subnet
            identities = self._identities(resource_group_name, location, load_balancer_subnet)
            cluster = self._create_cluster(resource_group_name, location, log_analytics_workspace_id, subnet_id,
                                           identities)
            user_pools = self._create_user_pools(resource_group_name, cluster, subnet_id)
            if config.container_insights:
                container_insights(name, cluster_id=cluster.id, cluster_name=config.name,
                                   resource_group_name=resource_group_name, workspace_location=location,
                                   log_analytics_workspace_id=log_analytics_workspace_id,
                                   opts=pulumi.ResourceOptions(parent=self, retain_on_delete=config.retained))
            self.cluster_name = cluster.name
            self.resource_group_name = pulumi.Output.from_input(resource_group_name)
            # Known before the cluster is (and stays known in previews of a cluster change): the AcrPull role
            # assignment on it never shows as a replace, and exists before the first node pulls.
            self.kubelet_object_id = identities.kubelet.principal_id
            self.oidc_issuer_url = cluster.oidc_issuer_profile.apply(lambda p: p.issuer_url if p else None)
            entra = config.entra.enabled
        self.purpose = pulumi.Output.from_input(config.purpose)
        self.node_count = pulumi.Output.from_input(capacity.total_nodes(pool_list))
        self.total_vcpus = pulumi.Output.from_input(capacity.total_vcpus(pool_list))
        self.pools = pulumi.Output.from_input([_describe(p) for p in pool_list])
        self.kubeconfig = self._user_kubeconfig(entra)
        access = []
        if not config.attached and config.entra.enabled and not config.entra.admin_group_object_ids:
            access = [grant_deployer(name, cluster.id, self.kubeconfig, parent=self)]
        # Every Kubernetes object waits for the user pools: on production the system pool is tainted
        # CriticalAddonsOnly, so the router, cert-manager and the models have nowhere to run before them. And for
        # the deployer's own Kubernetes rights, where no admin group gives them (components/cluster_access.py).
        # Mutable Secrets and ConfigMaps: a new key or router config is an update in place, not a delete and
        # re-create of a fixed-name object during which the router would find no keys.
        self.provider = k8s.Provider(f"{name}-k8s", kubeconfig=self.kubeconfig, enable_secret_mutable=True,
                                     enable_config_map_mutable=True,
                                     opts=pulumi.ResourceOptions(parent=self, depends_on=user_pools + access))
        self.register_outputs({
            "clusterName": self.cluster_name, "purpose": self.purpose, "nodeCount": self.node_count,
            "totalVcpus": self.total_vcpus, "pools": self.pools, "kubeconfig": self.kubeconfig,
        })

    def _identities(self, resource_group_name, location, load_balancer_subnet: Optional[str]) -> "ClusterIdentities":
        """The control plane's and the kubelet's identities, user-assigned and granted before the cluster exists.

        The kubelet's object ID is then known in every preview (a system-assigned one is unknown whenever the
        cluster changes, and every role assignment on it would show as a replace), and its AcrPull is in place
        before the first node pulls. AKS needs the control plane to hold Managed Identity Operator on a kubelet
        identity it is given; in a subnet of your own it also needs Network Contributor there (on the router's
        load balancer subnet too), before it creates the nodes' NICs and the load balancers.
        """
        def identity(role: str) -> managedidentity.UserAssignedIdentity:
            # A retained cluster keeps what it runs as: without them it could neither manage its load balancers
            # and disks nor pull an image.
            return managedidentity.UserAssignedIdentity(
                f"{self._name}-{role}", resource_group_name=resource_group_name,
                location=self._config.location or location, tags={"managed-by": "aks-serving"},
                opts=pulumi.ResourceOptions(parent=self, retain_on_delete=self._config.retained))

        control_plane, kubelet = identity("control-plane"), identity("kubelet")
        grants = [self._grant(f"{self._name}-kubelet-operator", control_plane, MANAGED_IDENTITY_OPERATOR_ROLE, kubelet.id)]
        if self._config.network.custom_subnet:
            subnets = dict.fromkeys([self._config.network.subnet_name, load_balancer_subnet or self._config.network.subnet_name])
            grants += [self._grant(f"{self._name}-network-{subnet}", control_plane, NETWORK_CONTRIBUTOR_ROLE,
                                   self._subnet_id(resource_group_name, subnet)) for subnet in subnets]
        return ClusterIdentities(control_plane, kubelet, grants)

    def _grant(self, name: str, identity, role: str, scope) -> authorization.RoleAssignment:
        return authorization.RoleAssignment(
            name, principal_id=identity.principal_id, principal_type=authorization.PrincipalType.SERVICE_PRINCIPAL,
            scope=scope, role_definition_id=role_definition_id(self._subscription_id, role),
            opts=pulumi.ResourceOptions(parent=self, retain_on_delete=self._config.retained))

    def _create_cluster(self, resource_group_name, location, log_analytics_workspace_id, subnet_id,
                        identities: "ClusterIdentities"):
        c = self._config
        autoscaled = c.max_node_count is not None
        # The platform moves these under us (auto-upgrade, cluster autoscaler); re-applying the
        # config's values on the next `up` would fight it or try a downgrade.
        ignore = ["agentPoolProfiles[*].orchestratorVersion"]
        if c.upgrade_channel != "none":
            ignore.append("kubernetesVersion")
        if autoscaled:
            ignore.append("agentPoolProfiles[*].count")
        system_pool = containerservice.ManagedClusterAgentPoolProfileArgs(
            name="system", mode=containerservice.AgentPoolMode.SYSTEM, vm_size=c.vm_size,
            count=c.node_count, enable_auto_scaling=autoscaled,
            min_count=c.node_count if autoscaled else None, max_count=c.max_node_count,
            os_type="Linux", type="VirtualMachineScaleSets", availability_zones=c.zones or None,
            vnet_subnet_id=subnet_id,
            node_taints=[SYSTEM_TAINT] if c.has_cpu_user_pool else None,
            node_labels={POOL_LABEL: "system"},
        )
        return containerservice.ManagedCluster(
            f"{self._name}-aks",
            resource_group_name=resource_group_name,
            resource_name_=c.name,
            location=c.location or location,
            dns_prefix=c.name,
            kubernetes_version=c.kubernetes_version,
            identity=containerservice.ManagedClusterIdentityArgs(
                type=containerservice.ResourceIdentityType.USER_ASSIGNED,
                user_assigned_identities=[identities.control_plane.id]),
            identity_profile={"kubeletidentity": containerservice.UserAssignedIdentityArgs(
                resource_id=identities.kubelet.id, client_id=identities.kubelet.client_id,
                object_id=identities.kubelet.principal_id)},
            agent_pool_profiles=[system_pool],
            enable_rbac=True,
            aad_profile=containerservice.ManagedClusterAADProfileArgs(
                managed=True, enable_azure_rbac=True,
                admin_group_object_ids=c.entra.admin_group_object_ids or None,
                tenant_id=c.entra.tenant_id,
            ) if c.entra.enabled else None,
            disable_local_accounts=not c.local_accounts,
            network_profile=self._network_profile(),
            api_server_access_profile=containerservice.ManagedClusterAPIServerAccessProfileArgs(
                authorized_ip_ranges=c.api_server.authorized_ip_ranges or None,
                enable_private_cluster=c.api_server.private_cluster,
            ),
            oidc_issuer_profile=containerservice.ManagedClusterOIDCIssuerProfileArgs(enabled=True),
            security_profile=containerservice.ManagedClusterSecurityProfileArgs(
                workload_identity=containerservice.ManagedClusterSecurityProfileWorkloadIdentityArgs(enabled=True)),
            addon_profiles=self._addons(log_analytics_workspace_id),
            auto_upgrade_profile=containerservice.ManagedClusterAutoUpgradeProfileArgs(
                upgrade_channel=c.upgrade_channel, node_os_upgrade_channel=c.node_os_upgrade_channel),
            # Production gets the uptime SLA (Standard tier), as a production inference cluster should.
            sku=containerservice.ManagedClusterSKUArgs(
                name="Base", tier=c.sku_tier or ("Standard" if c.purpose == "production" else "Free")),
            tags={"cluster-purpose": c.purpose, "managed-by": "aks-serving"},
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=ignore, retain_on_delete=c.retained,
                                        depends_on=identities.grants),
        )

    def _network_profile(self) -> containerservice.ContainerServiceNetworkProfileArgs:
        n = self._config.network
        return containerservice.ContainerServiceNetworkProfileArgs(
            network_plugin=n.plugin,
            # Azure CNI in overlay mode: pods get addresses from podCidr, not from the subnet, so a
            # busy cluster cannot exhaust the VNet (and plain Azure CNI refuses a podCidr).
            network_plugin_mode="overlay" if n.plugin == "azure" else None,
            network_policy=n.policy,
            # Cilium is a dataplane of Azure CNI overlay, and enforces policy itself.
            network_dataplane="cilium" if n.policy == "cilium" else None,
            load_balancer_sku="standard",
            service_cidr=n.service_cidr,
            dns_service_ip=n.dns_service_ip,
            pod_cidr=n.pod_cidr,
        )

    @functools.cached_property
    def _subscription_id(self) -> pulumi.Output[str]:
        """The deployer's subscription, asked once for every grant and subnet ID of the cluster."""
        return authorization.get_client_config_output(opts=pulumi.InvokeOutputOptions(parent=self)).subscription_id

    def _subnet_id(self, resource_group_name, subnet: Optional[str] = None) -> Optional[pulumi.Output[str]]:
        """The nodes' subnet (or `subnet` of the same VNet), in the deployer's subscription."""
        n = self._config.network
        if not n.custom_subnet:
            return None
        return pulumi.Output.all(self._subscription_id, n.vnet_resource_group or resource_group_name).apply(
            lambda args: f"/subscriptions/{args[0]}/resourceGroups/{args[1]}/providers/Microsoft.Network"
                         f"/virtualNetworks/{n.vnet_name}/subnets/{subnet or n.subnet_name}")

    def _addons(self, log_analytics_workspace_id) -> dict:
        c, addons = self._config, {}
        if c.container_insights:
            addons["omsagent"] = containerservice.ManagedClusterAddonProfileArgs(
                enabled=True,
                config={"logAnalyticsWorkspaceResourceID": log_analytics_workspace_id, "useAADAuth": "true"})
        if c.azure_policy:
            addons["azurepolicy"] = containerservice.ManagedClusterAddonProfileArgs(enabled=True)
        return addons

    def _create_user_pools(self, resource_group_name, cluster: containerservice.ManagedCluster,
                           subnet_id: Optional[pulumi.Output[str]]) -> list[containerservice.AgentPool]:
        # One at a time: AKS refuses (409 OperationNotAllowed) an agent pool operation while another runs on the
        # same cluster, so each pool waits for the one before it.
        created: list[containerservice.AgentPool] = []
        # pools() resolved each size once (the SKU table's spelling); its first entry is the system pool.
        for pool, capacity_ in zip(self._config.node_pools, self._config.pools()[1:]):
            gpu = capacity_.gpus_per_node > 0
            autoscaled = pool.max_node_count is not None
            ignore = ["orchestratorVersion"] + (["count"] if autoscaled else [])
            zones = sorted(pool.zones)
            created.append(containerservice.AgentPool(
                f"{self._name}-pool-{pool.name}",
                resource_group_name=resource_group_name,
                resource_name_=cluster.name,
                # AKS cannot change a pool's VM size or zones; the name carries them, so a change makes a new pool.
                agent_pool_name=aks_pool_name(pool.name, capacity_.vm_size, zones),
                mode=containerservice.AgentPoolMode.USER,
                vm_size=capacity_.vm_size,
                count=pool.node_count,
                enable_auto_scaling=autoscaled,
                min_count=pool.node_count if autoscaled else None,
                max_count=pool.max_node_count,
                os_type="Linux",
                type="VirtualMachineScaleSets",
                availability_zones=zones or None,
                vnet_subnet_id=subnet_id,
                # Model pods select POOL_LABEL, which outlives the AKS name: they follow the pool to its new nodes.
                node_labels={POOL_LABEL: pool.name, ACCELERATOR_LABEL: _accelerator(capacity_)},
                node_taints=[GPU_TAINT] if gpu else None,
                # AKS installs the NVIDIA driver; the device plugin comes with the serving stack.
                gpu_profile=containerservice.GPUProfileArgs(driver="Install") if gpu else None,
                opts=pulumi.ResourceOptions(parent=self, ignore_changes=ignore, depends_on=created[-1:],
                                            **_replaced_before_deleted(cluster)),
            ))
        return created

    def _user_kubeconfig(self, entra: bool) -> pulumi.Output[str]:
        """The cluster user's kubeconfig (never the admin one: local accounts are off), as a secret."""
        login = self._config.kubelogin
        credentials = containerservice.list_managed_cluster_user_credentials_output(
            resource_group_name=self.resource_group_name, resource_name=self.cluster_name,
            format="exec" if entra else None,
            opts=pulumi.InvokeOutputOptions(parent=self))

        def decode(result) -> str:
            text = base64.b64decode(result.kubeconfigs[0].value).decode()
            return rewrite_kubeconfig(text, login.login_mode, login.client_id) if entra else text

        return pulumi.Output.secret(credentials.apply(decode))


def _replaced_before_deleted(cluster: containerservice.ManagedCluster) -> dict:
    """A user pool's options: a new pool (a new name) first, the old one deleted after; kept with a kept cluster.

    - azure-native asks for delete-before-replace whenever a resource with a fixed name is replaced
      (provider/pkg/provider/provider.go, Diff: `deleteBeforeReplace := len(replaces) > 0` unless the name was
      random); the engine lets the program override that (pkg/resource/deploy/step_generator.go,
      continueStepsFromDiff: `if goal.DeleteBeforeReplace != nil`). The new pool has another name, so both can
      exist; deleting the old one last lets AKS drain it (honouring PodDisruptionBudgets) onto the new nodes.
    - deleted_with instead of retain_on_delete: a retained pool would never be deleted when it is replaced either.
      On `pulumi destroy`, or when the stack stops creating the cluster, the engine marks the cluster deleted even
      though retain_on_delete makes its own delete a no-op (step_generator.go, GenerateDeletes sets
      `sg.deletes[res.URN]` for every resource it drops), and a resource deleted with it is then skipped
      (pkg/resource/deploy/step.go, DeleteStep.Apply: `isDeletedWith(s.old.DeletedWith, s.otherDeletions)`). A
      retained cluster keeps its pools; a deleted one takes them with it; a replaced pool is really deleted.
    """
    return {"delete_before_replace": False, "deleted_with": cluster}


def _accelerator(pool: capacity.PoolCapacity) -> str:
    if pool.gpus_per_node:
        return "nvidia-gpu"
    return "fpga" if pool.fpgas_per_node else "none"


def _describe(pool: capacity.PoolCapacity) -> dict:
    size = lookup_vm_size(pool.vm_size)
    return {
        "name": pool.name, "mode": pool.mode, "vmSize": pool.vm_size, "count": pool.count,
        "vcpusPerNode": pool.vcpus_per_node, "gpusPerNode": pool.gpus_per_node,
        "gpuModel": size.gpu_model if size else None, "fpgasPerNode": pool.fpgas_per_node,
    }

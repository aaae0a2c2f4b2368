"""`cluster:` the AKS cluster to create (system and user pools, network, API server, Entra) or attach."""
from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
from typing import Any, Literal, Optional

from pydantic import Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from components.config_base import ConfigModel as _Model
from components.config_base import check_named as _named
from components.config_base import region_name
from policies.rules import capacity, naming
from policies.rules.vm_sizes import VmSize, lookup_vm_size


# A user pool's AKS name is its config name and this many characters that stand for the settings AKS cannot change
# on a pool (aks_pool_name); AKS names a Linux pool with at most 12 lowercase letters and digits.
POOL_SETTINGS_SUFFIX = 4
MAX_POOL_NAME = 12 - POOL_SETTINGS_SUFFIX


def aks_pool_name(name: str, vm_size: str, zones: list[str]) -> str:
    """`name` and 4 characters (base32 of a hash) of the VM size and zones, which AKS cannot change on an existing pool.

    A change to either gives the pool a new AKS name: Pulumi then makes a new pool beside the old one, the model pods
    (which select the stable `aks-serving/pool` label, not AKS's pool name) move as the old pool is drained, and the
    old pool is deleted. The same settings always give the same name, so an unchanged pool is left alone.
    """
    settings = json.dumps([vm_size, sorted(zones)])
    digest = base64.b32encode(hashlib.sha256(settings.encode()).digest()).decode().lower()
    return name + digest[:POOL_SETTINGS_SUFFIX]


class NodePool(_Model):
    """A user node pool, added as its own AgentPool so pools can be added to a running cluster."""

    name: str
    vm_size: str
    node_count: int = Field(1, gt=0)
    max_node_count: Optional[int] = Field(None, gt=0)
    vcpus_per_node: Optional[int] = Field(None, gt=0)
    zones: list[str] = []

    @model_validator(mode="after")
    def _rules(self) -> "NodePool":
        _named("name", naming.check_node_pool_name, self.name)
        if len(self.name) > MAX_POOL_NAME:
            raise ValueError(f"name: at most {MAX_POOL_NAME} characters ({self.name!r} has {len(self.name)}): AKS "
                             f"allows 12 and this tool adds {POOL_SETTINGS_SUFFIX} that stand for the pool's vmSize "
                             "and zones, so that changing either makes a new pool instead of failing")
        if self.max_node_count is not None and self.max_node_count < self.node_count:
            raise ValueError(f"maxNodeCount: must be >= nodeCount ({self.node_count})")
        return self


class Network(_Model):
    plugin: Literal["kubenet", "azure"] = "kubenet"
    policy: Literal["calico", "azure", "cilium"] = "calico"
    vnet_resource_group: Optional[str] = None
    vnet_name: Optional[str] = None
    subnet_name: Optional[str] = None
    service_cidr: Optional[str] = None
    dns_service_ip: Optional[str] = None
    pod_cidr: Optional[str] = None
    # Azure ML v1 took it; AKS no longer has it. Accepted so v1 configs load, then ignored with a warning.
    docker_bridge_cidr: Optional[str] = None

    @model_validator(mode="after")
    def _rules(self) -> "Network":
        if self.plugin == "kubenet" and self.policy != "calico":
            raise ValueError(
                f"policy: kubenet supports only calico network policy, not {self.policy}; "
                "use plugin: azure for azure or cilium"
            )
        byo = {"vnetName": self.vnet_name, "subnetName": self.subnet_name,
               "serviceCidr": self.service_cidr, "dnsServiceIp": self.dns_service_ip}
        missing = [k for k, v in byo.items() if v is None]
        if missing and len(missing) < len(byo):
            raise ValueError(
                f"{missing[0]}: a custom network needs vnetName, subnetName, serviceCidr and "
                f"dnsServiceIp together (all or none); missing {', '.join(missing)}"
            )
        if self.service_cidr is not None:
            _check_dns_ip(self.service_cidr, self.dns_service_ip)
        return self

    @property
    def custom_subnet(self) -> bool:
        return self.subnet_name is not None


def _check_dns_ip(service_cidr: str, dns_ip: Optional[str]) -> None:
    try:
        net = ipaddress.ip_network(service_cidr)
    except ValueError:
        raise ValueError(f"serviceCidr: {service_cidr!r} is not a CIDR block like 10.0.0.0/16")
    try:
        ip = ipaddress.ip_address(dns_ip)
    except ValueError:
        raise ValueError(f"dnsServiceIp: {dns_ip!r} is not an IP address")
    # AKS gives the first address of the range to the kubernetes API service.
    if ip not in net or ip in (net.network_address, net.network_address + 1, net.broadcast_address):
        raise ValueError(
            f"dnsServiceIp: must lie inside serviceCidr {service_cidr} and not be its first, "
            f"second or last address; got {dns_ip}"
        )


# RFC 5737 and RFC 3849: ranges kept for examples, which no real client ever calls from. A copied example
# would lock every Kubernetes call of `pulumi up` out of the API server.
DOCUMENTATION_RANGES = tuple(ipaddress.ip_network(n) for n in
                             ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32"))


class ApiServer(_Model):
    authorized_ip_ranges: list[str] = []
    private_cluster: bool = False

    @model_validator(mode="after")
    def _rules(self) -> "ApiServer":
        for i, cidr in enumerate(self.authorized_ip_ranges):
            try:
                network = ipaddress.ip_network(cidr)
            except ValueError:
                raise ValueError(f"authorizedIpRanges[{i}]: {cidr!r} is not an IP range like 20.31.0.0/16")
            if any(network.version == doc.version and network.subnet_of(doc) for doc in DOCUMENTATION_RANGES):
                raise ValueError(
                    f"authorizedIpRanges[{i}]: {cidr} is a documentation range (RFC 5737/3849) that no client calls "
                    "from; put the public egress ranges of the machines that run `pulumi up` and kubectl (your "
                    "offices, your CI runners; `curl -s https://api.ipify.org` prints this machine's), e.g. "
                    "`pulumi config set --path 'cluster.apiServer.authorizedIpRanges[0]' <address>/32`")
        if self.private_cluster and self.authorized_ip_ranges:
            raise ValueError(
                "authorizedIpRanges: a private cluster's API server has no public endpoint to restrict; "
                "set one of privateCluster or authorizedIpRanges"
            )
        return self


class Entra(_Model):
    """Kubernetes RBAC through managed Entra ID and Azure RBAC."""

    enabled: bool = True
    admin_group_object_ids: list[str] = []
    tenant_id: Optional[str] = None


class Kubelogin(_Model):
    """How `pulumi up` logs in to an Entra ID cluster with no person present."""

    login_mode: Literal["azurecli", "workloadidentity", "spn", "msi", "devicecode"] = "azurecli"
    client_id: Optional[str] = None

    @model_validator(mode="after")
    def _rules(self) -> "Kubelogin":
        if self.login_mode == "spn" and not self.client_id:
            raise ValueError("clientId: loginMode spn needs the service principal's clientId "
                             "(its secret comes from AAD_SERVICE_PRINCIPAL_CLIENT_SECRET)")
        return self


# Keys that describe a cluster to create; an attached cluster keeps what it has.
_CREATE_ONLY = ("kubernetes_version", "vm_size", "node_count", "max_node_count", "zones", "node_pools",
                "network", "api_server", "entra", "local_accounts", "upgrade_channel",
                "node_os_upgrade_channel", "sku_tier", "azure_policy", "container_insights", "location",
                "retain_on_delete")


class Cluster(_Model):
    mode: Literal["create", "attach"] = "create"
    name: Optional[str] = None
    resource_group: Optional[str] = None
    resource_id: Optional[str] = None
    purpose: Literal["production", "dev-test"] = "production"
    location: Optional[str] = None
    kubernetes_version: Optional[str] = None
    vm_size: str = "Standard_D3_v2"
    node_count: int = Field(3, gt=0)
    max_node_count: Optional[int] = Field(None, gt=0)
    vcpus_per_node: Optional[int] = Field(None, gt=0)
    zones: list[str] = []
    node_pools: list[NodePool] = []
    network: Network = Network()
    api_server: ApiServer = ApiServer()
    entra: Entra = Entra()
    local_accounts: bool = False
    kubelogin: Kubelogin = Kubelogin()
    upgrade_channel: Literal["none", "patch", "stable", "rapid", "node-image"] = "stable"
    node_os_upgrade_channel: Literal["None", "Unmanaged", "NodeImage", "SecurityPatch"] = "NodeImage"
    sku_tier: Optional[Literal["Free", "Standard", "Premium"]] = None
    azure_policy: bool = True
    container_insights: bool = True
    # v1's detach kept the cluster: unset, a production cluster (its pools, its monitoring rule and the resource
    # group that holds it) outlives `pulumi destroy` and a switch of the stack to attach.
    retain_on_delete: Optional[bool] = None

    _region = field_validator("location", mode="before")(region_name)

    @model_validator(mode="before")
    @classmethod
    def _v1_purpose_names(cls, data: Any) -> Any:
        # Azure ML v1 spelled the purposes FastProd and DevTest; accept them so v1 configs load.
        if isinstance(data, dict) and data.get("purpose") in ("FastProd", "DevTest"):
            data = {**data, "purpose": {"FastProd": "production", "DevTest": "dev-test"}[data["purpose"]]}
        return data

    @model_validator(mode="after")
    def _rules(self) -> "Cluster":
        if self.mode == "attach":
            self._check_attach()
        else:
            self._check_create()
        return self

    def _check_attach(self) -> None:
        for field in _CREATE_ONLY:
            if field in self.model_fields_set:
                raise ValueError(f"{to_camel(field)}: only for mode create; an attached cluster keeps its own settings")
        if self.resource_id:
            if self.name or self.resource_group:
                raise ValueError("resourceId: give either resourceId or resourceGroup + name, not both")
            _named("resourceId", naming.check_resource_id_for_aks, self.resource_id)
        elif not (self.name and self.resource_group):
            raise ValueError("resourceGroup: attaching needs resourceGroup + name, or resourceId")
        else:
            _named("name", naming.check_cluster_name, self.name)

    def _check_create(self) -> None:
        if self.resource_id:
            raise ValueError("resourceId: only for mode attach")
        if not self.name:
            raise ValueError("name: a cluster to create needs a name")
        _named("name", naming.check_cluster_name, self.name)
        if self.max_node_count is not None and self.max_node_count < self.node_count:
            raise ValueError(f"maxNodeCount: must be >= nodeCount ({self.node_count})")
        if not self.local_accounts and not self.entra.enabled:
            raise ValueError("localAccounts: local accounts can be turned off only with managed Entra ID; "
                             "set entra.enabled: true (or localAccounts: true)")
        names = [p.name for p in self.node_pools]
        if dupes := sorted({n for n in names if names.count(n) > 1} | ({"system"} & set(names))):
            raise ValueError(f"nodePools: pool names must be unique and not 'system'; repeated: {', '.join(dupes)}")
        self._check_capacity()

    def _check_capacity(self) -> None:
        pools = self.pools()
        findings = capacity.system_pool_findings(pools[0]) + capacity.purpose_findings(self.purpose, pools, attached=False)
        for finding in findings:
            if finding.level == "error":
                raise ValueError(f"{finding.key}: {finding.message}")

    def pools(self) -> list[capacity.PoolCapacity]:
        """The pools of a cluster to create, system pool first (an attached cluster's are read from Azure)."""
        return [pool_capacity("system", self.vm_size, self.node_count, self.vcpus_per_node, "System")] + [
            pool_capacity(p.name, p.vm_size, p.node_count, p.vcpus_per_node, "User", f"nodePools[{i}].vmSize")
            for i, p in enumerate(self.node_pools)]

    @property
    def retained(self) -> bool:
        """Whether the cluster this stack creates stays in Azure when the stack lets go of it."""
        return not self.attached and (self.retain_on_delete if self.retain_on_delete is not None
                                      else self.purpose == "production")

    @property
    def attached(self) -> bool:
        return self.mode == "attach"

    @property
    def has_cpu_user_pool(self) -> bool:
        return any(p.gpus_per_node == 0 for p in self.pools()[1:])


def pool_capacity(name: str, vm_size: str, count: int, vcpus_override: Optional[int], mode: str,
                  key: str = "vmSize") -> capacity.PoolCapacity:
    """Capacity of one pool from the SKU table; an unknown size needs vcpusPerNode in the config."""
    size: Optional[VmSize] = lookup_vm_size(vm_size)
    if size is None and vcpus_override is None:
        raise ValueError(
            f"{key}: unknown VM size {vm_size!r}; check the spelling (e.g. Standard_D4s_v5) "
            "or give vcpusPerNode for a size this tool does not know"
        )
    return capacity.PoolCapacity(
        name=name, vm_size=size.name if size else vm_size, count=count,
        vcpus_per_node=vcpus_override or size.vcpus,
        memory_gib=size.memory_gib if size else None,
        gpus_per_node=size.gpus if size else 0, fpgas_per_node=size.fpgas if size else 0, mode=mode,
    )


# ---------------------------------------------------------------- router

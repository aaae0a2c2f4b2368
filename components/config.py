"""The whole stack config, typed and validated once.

One pydantic model per config section, camelCase keys as users write them in `Pulumi.<stack>.yaml`,
Azure ML v1's defaults, and errors that name the key path and the rule. No Pulumi import: the local
deployment and the tests load stack files with `load_stack_file`; the Pulumi program passes its
`pulumi.Config` to `load_pulumi_config`.

Naming patterns, VM sizes and vCPU math live in the policy pack's rule module (`policies/rules`),
so a rule is written once and the CrossGuard pack enforces the same one on any stack.
"""
from __future__ import annotations

import difflib
import ipaddress
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, Optional

import yaml
from pydantic import BaseModel, Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel

from components.config_base import ConfigModel as _Model
from components.config_base import check_named as _named
from components.model_refs import ModelRef, duplicate_ids
from policies.rules import capacity, naming
from policies.rules.vm_sizes import VmSize, lookup_vm_size
from router.settings import HttpLimits

PROJECT = "aks-serving"
SECTIONS = ("workspace", "cluster", "router", "environments", "services", "endpoints")
DEFAULT_BASE_IMAGE = "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04"
MAX_MODELS_PER_SERVICE = 1000
MAX_ENDPOINT_VERSIONS = 6
# Values that must only ever be set with `pulumi config set --secret`.
SECRET_PATHS = ("router.tls.key",)


class ConfigError(ValueError):
    """Every problem found in a stack config, one `key.path: rule` line each."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid stack config:\n  " + "\n  ".join(problems))


# ---------------------------------------------------------------- workspace


class Workspace(_Model):
    name: str = Field(min_length=1, max_length=40)
    location: str
    resource_group: Optional[str] = None
    # Unset registry and storage names are auto-named by Pulumi (they must be globally unique).
    registry_name: Optional[str] = None
    storage_account_name: Optional[str] = None
    models_container: str = "models"
    global_registry: Optional[str] = None
    log_retention_days: int = Field(30, ge=30, le=730)
    application_insights: bool = True

    @model_validator(mode="after")
    def _names(self) -> "Workspace":
        _named("registryName", naming.check_registry_name, self.registry_name)
        _named("storageAccountName", naming.check_storage_account_name, self.storage_account_name)
        return self

    @property
    def resource_group_name(self) -> str:
        return self.resource_group or f"rg-{self.name}"


# ---------------------------------------------------------------- cluster


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


class ApiServer(_Model):
    authorized_ip_ranges: list[str] = []
    private_cluster: bool = False

    @model_validator(mode="after")
    def _rules(self) -> "ApiServer":
        for i, cidr in enumerate(self.authorized_ip_ranges):
            try:
                ipaddress.ip_network(cidr)
            except ValueError:
                raise ValueError(f"authorizedIpRanges[{i}]: {cidr!r} is not an IP range like 203.0.113.0/24")
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
                "node_os_upgrade_channel", "sku_tier", "azure_policy", "container_insights", "location")


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


class LoadBalancer(_Model):
    type: Literal["public", "internal"] = "public"
    subnet: Optional[str] = None

    @model_validator(mode="after")
    def _rules(self) -> "LoadBalancer":
        if self.subnet and self.type != "internal":
            raise ValueError("subnet: a load balancer subnet is only for type internal")
        return self


LETS_ENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"


class Tls(_Model):
    """TLS on the router: off, auto (an Azure DNS label and an ACME certificate) or a custom certificate."""

    mode: Literal["off", "auto", "custom"] = "off"
    leaf_domain_label: Optional[str] = None
    # auto: the ACME directory (Let's Encrypt's staging one suits stacks that are torn down often: its rate
    # limits are far higher, but browsers do not trust what it issues).
    acme_server: str = LETS_ENCRYPT
    cname: Optional[str] = None
    cert: Optional[str] = None
    key: Optional[str] = None  # secret: `pulumi config set --secret --path router.tls.key ...`


class Router(_Model):
    """The request router's deployment; unset replicas: 1 on dev-test, 2 (and a CPU autoscaler) on production."""

    namespace: str = "aks-serving"
    # Where model Deployments run unless a service names its own namespace; kept apart from the router's
    # so a default-deny NetworkPolicy can fence the models in.
    models_namespace: str = "aks-serving-models"
    replicas: Optional[int] = Field(None, gt=0)
    max_replicas: Optional[int] = Field(None, gt=0)
    max_request_body_mb: int = Field(100, gt=0)
    # What one client may take of the router (head size, body and send timeouts...): the router's own
    # schema, so the stack file and the router agree on every key and rule.
    limits: HttpLimits = HttpLimits()
    load_balancer: LoadBalancer = LoadBalancer()
    tls: Tls = Tls()

    @model_validator(mode="after")
    def _rules(self) -> "Router":
        _named("namespace", naming.check_namespace, self.namespace)
        _named("modelsNamespace", naming.check_namespace, self.models_namespace)
        if self.models_namespace == self.namespace:
            raise ValueError("modelsNamespace: must differ from namespace (the models are fenced off from the router's "
                             "namespace by NetworkPolicies)")
        if self.replicas and self.max_replicas and self.max_replicas < self.replicas:
            raise ValueError(f"maxReplicas: must be >= replicas ({self.replicas})")
        return self


# ---------------------------------------------------------------- environments, services, endpoints


class Environment(_Model):
    """What a model image is built from; its name does not count towards the image hash."""

    conda_file: str
    base_image: str = DEFAULT_BASE_IMAGE
    docker_steps: list[str] = []


class Autoscale(_Model):
    enabled: Optional[bool] = None  # unset: on, unless numReplicas fixes the count (as v1)
    min_replicas: int = Field(1, gt=0)
    max_replicas: int = Field(10, gt=0)
    target_utilization: int = Field(70, gt=0, le=100)
    refresh_seconds: int = Field(1, gt=0)
    stable_window_seconds: int = Field(60, gt=0)

    @model_validator(mode="after")
    def _rules(self) -> "Autoscale":
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"minReplicas: must be <= maxReplicas ({self.min_replicas} > {self.max_replicas})")
        return self


class LivenessProbe(_Model):
    period_seconds: int = Field(10, gt=0)
    initial_delay_seconds: int = Field(310, gt=0)
    timeout_seconds: int = Field(2, gt=0)
    success_threshold: int = Field(1, gt=0)
    failure_threshold: int = Field(3, gt=0)


class Keys(_Model):
    """Bump a version to regenerate that key (v1's regen_key) while the other keeps working."""

    primary_version: int = Field(1, gt=0)
    secondary_version: int = Field(1, gt=0)


class AuthSettings(_Model):
    """Who may call a scoring URI: keys (v1's default), Entra-style tokens, or nobody checks."""

    auth_enabled: Optional[bool] = None  # unset: on, unless token auth replaces it
    token_auth_enabled: bool = False
    keys: Keys = Keys()

    @model_validator(mode="after")
    def _auth_rules(self) -> "AuthSettings":
        if self.auth_enabled and self.token_auth_enabled:
            raise ValueError("tokenAuthEnabled: token auth replaces key auth; set authEnabled: false to use tokens")
        return self

    @property
    def auth_mode(self) -> Literal["key", "token", "none"]:
        if self.token_auth_enabled:
            return "token"
        return "none" if self.auth_enabled is False else "key"


class DeploymentSpec(_Model):
    """One model deployment, with the fields and defaults of v1's AksWebservice.deploy_configuration."""

    environment: str
    entry_script: str
    source_directory: Optional[str] = None
    models: list[ModelRef] = Field([], max_length=MAX_MODELS_PER_SERVICE)
    cpu_cores: float = Field(0.1, gt=0)
    cpu_cores_limit: Optional[float] = Field(None, gt=0)
    memory_gb: float = Field(0.5, gt=0)
    memory_gb_limit: Optional[float] = Field(None, gt=0)
    gpu_cores: int = Field(0, ge=0)
    fpgas: int = Field(0, ge=0)
    node_pool: Optional[str] = None
    num_replicas: Optional[int] = Field(None, gt=0)
    autoscale: Autoscale = Autoscale()
    replica_max_concurrent_requests: int = Field(1, gt=0)
    max_request_wait_time_ms: int = Field(500, gt=0)
    scoring_timeout_ms: int = Field(60000, gt=0)
    liveness_probe: LivenessProbe = LivenessProbe()
    namespace: Optional[str] = None
    # v1's collect_model_data: azureml.monitoring's ModelDataCollector writes rows (off: collect() does nothing).
    collect_model_data: bool = False

    @model_validator(mode="after")
    def _deployment_rules(self) -> "DeploymentSpec":
        if self.cpu_cores_limit is not None and self.cpu_cores_limit < self.cpu_cores:
            raise ValueError(f"cpuCoresLimit: must be >= cpuCores ({self.cpu_cores})")
        if self.memory_gb_limit is not None and self.memory_gb_limit < self.memory_gb:
            raise ValueError(f"memoryGbLimit: must be >= memoryGb ({self.memory_gb})")
        if self.fpgas:
            raise ValueError("fpgas: AKS exposes no FPGA device to pods, so FPGA models cannot be served; "
                             "deploy the model for CPU or GPU")
        if self.num_replicas is not None and self.autoscale.enabled:
            raise ValueError("numReplicas: a fixed replica count cannot be combined with autoscale.enabled: true")
        if self.autoscale.enabled is False and self.num_replicas is None:
            raise ValueError("numReplicas: autoscale.enabled: false needs numReplicas")
        _named("namespace", naming.check_namespace, self.namespace)
        if repeated := duplicate_ids(self.models):
            raise ValueError(f"models: {', '.join(repeated)} listed twice (name:version must be unique in a "
                             f"deployment, as v1's Model.get_model_path finds one)")
        return self

    @property
    def autoscale_enabled(self) -> bool:
        return self.autoscale.enabled if self.autoscale.enabled is not None else self.num_replicas is None


class ServiceSpec(DeploymentSpec, AuthSettings):
    """A service with its own scoring URI and auth."""


class EndpointVersion(DeploymentSpec):
    traffic_percentile: float = Field(0, ge=0, le=100)
    is_default: bool = False
    is_control_version_type: bool = False


class Endpoint(AuthSettings):
    """v1's AksEndpoint: up to six versions behind one scoring URI (and so one auth), split by traffic share."""

    versions: dict[str, EndpointVersion] = Field(min_length=1, max_length=MAX_ENDPOINT_VERSIONS)

    @model_validator(mode="after")
    def _rules(self) -> "Endpoint":
        for name in self.versions:
            # Short names like v1 are fine: the service-name rule applies to <endpoint>-<version>.
            _named(f"versions.{name}", naming.check_version_name, name)
        total = sum(v.traffic_percentile for v in self.versions.values())
        if total > 100:
            raise ValueError(f"versions: traffic percentiles add up to {total:g}; they may add up to at most 100")
        if len(defaults := [n for n, v in self.versions.items() if v.is_default]) > 1:
            raise ValueError(f"versions: only one version can be the default; {', '.join(defaults)} all say isDefault")
        if len(controls := [n for n, v in self.versions.items() if v.is_control_version_type]) > 1:
            raise ValueError(f"versions: at most one control version; {', '.join(controls)} all say isControlVersionType")
        return self

    @property
    def default_version(self) -> str:
        return next((n for n, v in self.versions.items() if v.is_default), next(iter(self.versions)))

    def effective_traffic(self) -> dict[str, float]:
        """Each version's share; the default gets its own plus whatever no version claimed (as v1)."""
        shares = {n: v.traffic_percentile for n, v in self.versions.items()}
        shares[self.default_version] += 100 - sum(shares.values())
        return shares


# ---------------------------------------------------------------- the stack


class StackConfig(_Model):
    workspace: Workspace
    cluster: Cluster
    router: Router = Router()
    environments: dict[str, Environment] = {}
    services: dict[str, ServiceSpec] = {}
    endpoints: dict[str, Endpoint] = {}
    # Paths of `secure:` values a stack file held that could not be decrypted without the Pulumi CLI.
    unset_secrets: frozenset[str] = frozenset()

    @model_validator(mode="after")
    def _rules(self) -> "StackConfig":
        if self.cluster.purpose == "production" and self.router.replicas == 1:
            raise ValueError("router.replicas: production clusters run at least 2 router pods, so one can fail "
                             "or be drained without an outage")
        self._check_tls()
        self._check_names()
        for _, path, spec in self.deployments():
            self._check_deployment(path, spec)
            if spec.namespace == self.router.namespace:
                raise ValueError(f"{path}.namespace: models cannot run in the router's namespace "
                                 f"({self.router.namespace}); NetworkPolicies fence models off from it")
        return self

    def _check_tls(self) -> None:
        tls, lb = self.router.tls, self.router.load_balancer
        if tls.mode == "auto":
            if lb.type == "internal":
                raise ValueError("router.tls.mode: auto needs a public load balancer (its certificate is issued for "
                                 "a public DNS name); use custom with an internal load balancer")
            if not tls.leaf_domain_label:
                raise ValueError("router.tls.leafDomainLabel: tls mode auto needs a leafDomainLabel")
            _named("router.tls.leafDomainLabel", naming.check_dns1123_label, tls.leaf_domain_label)
        if tls.mode == "custom":
            given = {k: getattr(tls, k) is not None or f"router.tls.{k}" in self.unset_secrets
                     for k in ("cname", "cert", "key")}
            if missing := [k for k, ok in given.items() if not ok]:
                raise ValueError(f"router.tls.{missing[0]}: custom TLS needs cname, cert and key together; "
                                 f"missing {', '.join(missing)}")
        elif tls.cname or tls.cert or tls.key:
            raise ValueError(f"router.tls.mode: cname, cert and key are only used with mode custom (mode is {tls.mode})")
        if tls.acme_server != LETS_ENCRYPT and (tls.mode != "auto" or not tls.acme_server.startswith("https://")):
            raise ValueError("router.tls.acmeServer: an https:// ACME directory URL, used with mode auto only")

    def _check_names(self) -> None:
        for name in self.services:
            _named(f"services.{name}", naming.check_service_name, name)
        for name, endpoint in self.endpoints.items():
            _named(f"endpoints.{name}", naming.check_service_name, name)
            for version in endpoint.versions:
                # Each version runs as the service `<endpoint>-<version>`, whose name Kubernetes must accept.
                full = version_service_name(name, version)
                if full in self.services:
                    raise ValueError(f"endpoints.{name}.versions.{version}: runs as service {full!r}, "
                                     "which services already defines")
                _named(f"endpoints.{name}.versions.{version}", lambda n: naming.check_service_name(n) and
                       f"runs as service {n!r}, which {naming.check_service_name(n)}", full)

    def _check_deployment(self, path: str, spec: DeploymentSpec) -> None:
        if spec.environment not in self.environments:
            known = ", ".join(self.environments) or "none defined"
            raise ValueError(f"{path}.environment: no environment {spec.environment!r} in environments ({known})")
        if not self.cluster.attached:  # an attached cluster's pools are read from Azure and checked then
            check_placement(path, spec, self.cluster.pools())

    def deployments(self) -> list[tuple[str, str, DeploymentSpec]]:
        """Every model deployment as (service it runs as, config key path, spec): services, then versions."""
        found = [(n, f"services.{n}", s) for n, s in self.services.items()]
        for name, endpoint in self.endpoints.items():
            found += [(version_service_name(name, v), f"endpoints.{name}.versions.{v}", spec)
                      for v, spec in endpoint.versions.items()]
        return found

    def models_namespace_of(self, spec: DeploymentSpec) -> str:
        return spec.namespace or self.router.models_namespace

    def models_namespaces(self) -> list[str]:
        """Every namespace a model runs in (the default one always: the router's Roles are scoped to it)."""
        found = [self.router.models_namespace] + [self.models_namespace_of(s) for _, _, s in self.deployments()]
        return list(dict.fromkeys(found))



def check_placement(path: str, spec: DeploymentSpec, pools: list[capacity.PoolCapacity]) -> None:
    """A model's nodePool must exist; a GPU model needs a GPU pool whose nodes hold its GPUs."""
    by_name = {p.name: p for p in pools}
    if spec.node_pool is not None and spec.node_pool not in by_name:
        raise ValueError(f"{path}.nodePool: no pool {spec.node_pool!r} in the cluster ({', '.join(by_name)})")
    if not spec.gpu_cores:
        return
    if spec.node_pool is not None:
        pool = by_name[spec.node_pool]
        if not pool.gpus_per_node:
            raise ValueError(f"{path}.nodePool: gpuCores needs a GPU pool; {pool.name} is {pool.vm_size} with no GPU")
    else:
        gpu_pools = [p for p in pools if p.gpus_per_node]
        if not gpu_pools:
            raise ValueError(f"{path}.gpuCores: GPU models need a node pool whose VM size has GPUs; add one to "
                             "cluster.nodePools (e.g. vmSize: Standard_NC4as_T4_v3)")
        pool = max(gpu_pools, key=lambda p: p.gpus_per_node)
    if spec.gpu_cores > pool.gpus_per_node:
        raise ValueError(f"{path}.gpuCores: {spec.gpu_cores} GPUs do not fit on one node of pool {pool.name} "
                         f"({pool.vm_size} has {pool.gpus_per_node})")


def check_attached_pools(cfg: StackConfig, pools: list[capacity.PoolCapacity]) -> list[str]:
    """The purpose and placement rules against an attached cluster's pools: errors raise, warnings return."""
    findings = capacity.purpose_findings(cfg.cluster.purpose, pools, attached=True)
    problems = [f"cluster.purpose: {f.message}" for f in findings if f.level == "error"]
    for _, path, spec in cfg.deployments():
        try:
            check_placement(path, spec, pools)
        except ValueError as err:
            problems.append(str(err))
    if problems:
        raise ConfigError(problems)
    return [f"cluster: {f.message}" for f in findings if f.level == "warning"]


def version_service_name(endpoint: str, version: str) -> str:
    return f"{endpoint}-{version}"


def config_warnings(cfg: StackConfig) -> list[str]:
    """Things that are allowed but probably not what the user meant."""
    warnings = []
    if cfg.cluster.network.docker_bridge_cidr:
        warnings.append("cluster.network.dockerBridgeCidr: AKS no longer uses a docker bridge; the value is ignored")
    if not cfg.cluster.attached and not (cfg.cluster.api_server.private_cluster or cfg.cluster.api_server.authorized_ip_ranges):
        warnings.append("cluster.apiServer: the API server is open to the internet; set authorizedIpRanges "
                        "or privateCluster")
    if not cfg.cluster.attached and cfg.cluster.entra.enabled and not cfg.cluster.entra.admin_group_object_ids:
        warnings.append("cluster.entra.adminGroupObjectIds: no admin group; `pulumi up` can deploy into the cluster "
                        "only if its identity holds an Azure Kubernetes Service RBAC role there")
    for path in sorted(cfg.unset_secrets):
        warnings.append(f"{path}: a secure value that cannot be decrypted without the Pulumi CLI; treated as unset")
    return warnings


# ---------------------------------------------------------------- loading


def parse_stack_config(raw: Mapping[str, Any], unset_secrets: frozenset[str] = frozenset()) -> StackConfig:
    """Validate a config mapping (sections as keys), raising ConfigError with every problem found."""
    unknown = [k for k in raw if k not in SECTIONS]
    if unknown:
        raise ConfigError([_unknown_key_message(k, SECTIONS) for k in unknown])
    try:
        return StackConfig.model_validate({**raw, "unset_secrets": unset_secrets})
    except ValidationError as err:
        raise ConfigError([_problem(e) for e in err.errors()]) from None


def load_stack_file(path: str | Path) -> StackConfig:
    """Load `Pulumi.<stack>.yaml`; `secure:` values cannot be decrypted here and count as unset."""
    document = yaml.safe_load(Path(path).read_text()) or {}
    prefix = f"{PROJECT}:"
    raw, unset = {}, set()
    for key, value in (document.get("config") or {}).items():
        if key.startswith(prefix):
            section = key[len(prefix):]
            raw[section] = _strip_secure(value, section, unset)
    return parse_stack_config(raw, frozenset(unset))


def load_pulumi_config(config: Any, is_secret: Callable[[str], bool]) -> StackConfig:
    """Load from a `pulumi.Config()` (duck-typed, so this module stays free of Pulumi).

    `is_secret(section)` tells whether Pulumi holds a section encrypted; a secret value in a plain
    section would sit in the stack file in clear text, so it is refused.
    """
    raw = {s: v for s in SECTIONS if (v := config.get_object(s)) is not None}
    plain = [p for p in SECRET_PATHS if _get_path(raw, p) is not None and not is_secret(p.split(".")[0])]
    if plain:
        raise ConfigError([f"{p}: a secret in plain text; set it with `pulumi config set --secret --path {p} ...`"
                           for p in plain])
    return parse_stack_config(raw)


def _get_path(raw: Mapping[str, Any], path: str) -> Any:
    value: Any = raw
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def _strip_secure(value: Any, path: str, unset: set[str]) -> Any:
    if isinstance(value, dict):
        if set(value) == {"secure"}:
            unset.add(path)
            return None
        return {k: _strip_secure(v, f"{path}.{k}", unset) for k, v in value.items()}
    if isinstance(value, list):
        return [_strip_secure(v, f"{path}[{i}]", unset) for i, v in enumerate(value)]
    return value


def _problem(error: dict) -> str:
    """One pydantic error as `key.path: rule`, with the key path users wrote (camelCase)."""
    path = ".".join(_loc_part(p) for p in error["loc"]).replace(".[", "[")
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        return _unknown_key_message(path, ())
    if error["type"] == "missing":
        return f"{path}: required, not set"
    # Model validators raise "key: rule" relative to the model they check; join it to the path.
    head, sep, rest = message.partition(": ")
    if sep and head and " " not in head:
        return f"{path}.{head}: {rest}".lstrip(".").replace(".[", "[")
    return f"{path}: {message}" if path else message


def _loc_part(part: Any) -> str:
    return f"[{part}]" if isinstance(part, int) else str(part)


def _unknown_key_message(path: str, allowed: tuple[str, ...]) -> str:
    key = path.rsplit(".", 1)[-1]
    hint = difflib.get_close_matches(key, allowed or _ALL_KEYS, n=1)
    return f"{path}: unknown key" + (f"; did you mean {hint[0]}?" if hint else "")


def _collect_keys(model: type[BaseModel], seen: set[str]) -> set[str]:
    for name, field in model.model_fields.items():
        seen.add(field.alias or name)
        for arg in (field.annotation, *getattr(field.annotation, "__args__", ())):
            for inner in (arg, *getattr(arg, "__args__", ())):
                if isinstance(inner, type) and issubclass(inner, BaseModel) and inner is not model:
                    _collect_keys(inner, seen)
    return seen


_ALL_KEYS = tuple(sorted(_collect_keys(StackConfig, set())))

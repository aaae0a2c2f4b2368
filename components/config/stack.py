"""The whole stack: the sections together, and the rules that span them (names, placement, TLS)."""
from __future__ import annotations

from pydantic import model_validator

from components.config_base import ConfigError
from components.config_base import ConfigModel as _Model
from components.config_base import check_named as _named
from components.config.cluster import Cluster
from components.config.deployments import DeploymentSpec, Endpoint, Environment, ServiceSpec
from components.config.images import Images
from components.config.router import LETS_ENCRYPT, Router
from components.config.workspace import Workspace
from policies.rules import capacity, naming


class StackConfig(_Model):
    workspace: Workspace
    cluster: Cluster
    router: Router = Router()
    images: Images = Images()
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
            if spec.enable_app_insights and not self.workspace.application_insights:
                raise ValueError(f"{path}.enableAppInsights: needs the workspace's Application Insights, but "
                                 "workspace.applicationInsights is false; set it to true or turn enableAppInsights off")
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
        for name in self.endpoints:
            _named(f"endpoints.{name}", naming.check_service_name, name)
            if name in self.services:  # both would own the key Secret `<name>-keys` and the name in status
                raise ValueError(f"endpoints.{name}: services already defines {name!r}; a service and an endpoint "
                                 "need different names")
        runs_as: dict[str, str] = {name: f"services.{name}" for name in self.services}
        for name, endpoint in self.endpoints.items():
            for version in endpoint.versions:
                # Each version runs as the service `<endpoint>-<version>`, whose name Kubernetes must accept and
                # no other deployment may take (`sent` + `ab-v1` and `sent-ab` + `v1` are both `sent-ab-v1`).
                full, path = version_service_name(name, version), f"endpoints.{name}.versions.{version}"
                if full in runs_as:
                    raise ValueError(f"{path}: runs as service {full!r}, which {runs_as[full]} "
                                     f"{'already defines' if runs_as[full].startswith('services.') else 'also runs as'}")
                runs_as[full] = path
                _named(path, lambda n: naming.check_service_name(n) and
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
        warnings.append("cluster.entra.adminGroupObjectIds: no admin group; the identity running `pulumi up` is made "
                        "Azure Kubernetes Service RBAC Cluster Admin on the cluster, and nobody else gets Kubernetes "
                        "rights: give your operators' group here")
    for path in sorted(cfg.unset_secrets):
        warnings.append(f"{path}: a secure value that cannot be decrypted without the Pulumi CLI; treated as unset")
    return warnings


# ---------------------------------------------------------------- loading

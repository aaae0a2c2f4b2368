"""The AKS compute target as the v1 SDK set it up, from a JSON or YAML file keyed by the SDK's own parameter
names, onto `cluster:` and `router:`:

    {"name": "myaks",                                   # the compute target's name in the workspace
     "provisioning_configuration": {"agent_count": 3, "vm_size": "Standard_D3_v2", ...}}
  or {"name": "myaks", "attach_configuration": {"resource_group": "rg", "cluster_name": "aks1"}}

plus the TLS settings of `enable_ssl` (leaf_domain_label, overwrite_existing_domain, ssl_cname,
ssl_cert_pem_file, ssl_key_pem_file) in either. `AksCompute.provisioning_configuration` (azureml-core 1.x)
has no SKU or tier parameter, so none is read; `cluster.skuTier` is this project's own key.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from v1import.documents import V1ImportError, read_document, section, unknown_keys
from v1import.report import Report
from v1import.tree import put

SSL = ("leaf_domain_label", "overwrite_existing_domain", "ssl_cname", "ssl_cert_pem_file", "ssl_key_pem_file")
LOAD_BALANCER = ("load_balancer_type", "load_balancer_subnet")
PROVISIONING = ("agent_count", "vm_size", "cluster_purpose", "location", "vnet_resourcegroup_name", "vnet_name",
                "subnet_name", "service_cidr", "dns_service_ip", "docker_bridge_cidr", *LOAD_BALANCER, *SSL)
ATTACH = ("resource_group", "cluster_name", "resource_id", "cluster_purpose", *LOAD_BALANCER, *SSL)
NETWORK = {"vnet_resourcegroup_name": "vnetResourceGroup", "vnet_name": "vnetName", "subnet_name": "subnetName",
           "service_cidr": "serviceCidr", "dns_service_ip": "dnsServiceIp"}
# AksCompute.ClusterPurpose's values, and its attribute names as people wrote them.
PURPOSES = {"fastprod": "production", "fast_prod": "production", "devtest": "dev-test", "dev_test": "dev-test"}
LOAD_BALANCERS = {"publicip": "public", "internalloadbalancer": "internal"}


@dataclass
class Compute:
    cluster: dict = field(default_factory=dict)
    router: dict = field(default_factory=dict)
    tls_key_file: Optional[Path] = None  # read into a Pulumi secret, never into the stack file
    name: Optional[str] = None
    name_source: str = ""


def read_compute(path: Path, report: Report) -> Compute:
    document = read_document(path)
    problems = unknown_keys(document, ("name", "provisioning_configuration", "attach_configuration"), path)
    modes = [k for k in ("provisioning_configuration", "attach_configuration") if k in document]
    if len(modes) != 1:
        problems.append(f"{path}: give one of provisioning_configuration (a cluster to create) or "
                        "attach_configuration (an existing cluster)")
    if problems:
        raise V1ImportError(problems)
    mode = modes[0]
    settings = section(document, mode, path)
    if problems := unknown_keys(settings, PROVISIONING if mode.startswith("prov") else ATTACH, path, f"{mode}."):
        raise V1ImportError(problems)
    compute = Compute(name=document.get("name"), name_source=f"{path.name}: name")
    src = lambda key: f"{path.name}: {mode}.{key}"  # noqa: E731
    if mode == "attach_configuration":
        _attach(settings, compute, src, path)
    else:
        _provision(settings, compute, src, report)
    _purpose(settings, compute, src, path)
    _load_balancer(settings, compute, src, path)
    _tls(settings, compute, src, path, report)
    return compute


def _attach(settings: dict, compute: Compute, src, path: Path) -> None:
    put(compute.cluster, "mode", "attach", src("(attach)"))
    put(compute.cluster, "resourceGroup", settings.get("resource_group"), src("resource_group"))
    put(compute.cluster, "name", settings.get("cluster_name"), src("cluster_name"))
    put(compute.cluster, "resourceId", settings.get("resource_id"), src("resource_id"))


def _provision(settings: dict, compute: Compute, src, report: Report) -> None:
    put(compute.cluster, "nodeCount", settings.get("agent_count"), src("agent_count"))
    put(compute.cluster, "vmSize", settings.get("vm_size"), src("vm_size"))
    put(compute.cluster, "location", settings.get("location"), src("location"))
    for key, target in NETWORK.items():
        put(compute.cluster, f"network.{target}", settings.get(key), src(key))
    if settings.get("subnet_name"):
        # v1 put a cluster in your subnet with Azure CNI (kubenet needs a route table v1 never made).
        put(compute.cluster, "network.plugin", "azure", src("subnet_name") + " (v1 used Azure CNI in a vnet)")
        put(compute.cluster, "network.policy", "azure", src("subnet_name") + " (Azure CNI's network policy)")
    if settings.get("docker_bridge_cidr"):
        report.skip(src("docker_bridge_cidr"), "AKS no longer has a docker bridge; the value has no effect")


def _purpose(settings: dict, compute: Compute, src, path: Path) -> None:
    purpose = settings.get("cluster_purpose")
    if purpose is None:
        return
    mapped = PURPOSES.get(str(purpose).rsplit(".", 1)[-1].lower())
    if mapped is None:
        raise V1ImportError([f"{path}: cluster_purpose: {purpose!r}; v1's purposes are FastProd and DevTest"])
    put(compute.cluster, "purpose", mapped, src("cluster_purpose"))


def _load_balancer(settings: dict, compute: Compute, src, path: Path) -> None:
    kind = settings.get("load_balancer_type")
    if kind is not None:
        mapped = LOAD_BALANCERS.get(str(kind).lower())
        if mapped is None:
            raise V1ImportError([f"{path}: load_balancer_type: {kind!r}; v1's types are PublicIp and "
                                 "InternalLoadBalancer"])
        put(compute.router, "loadBalancer.type", mapped, src("load_balancer_type"))
    put(compute.router, "loadBalancer.subnet", settings.get("load_balancer_subnet"), src("load_balancer_subnet"))


def _tls(settings: dict, compute: Compute, src, path: Path, report: Report) -> None:
    custom = [k for k in ("ssl_cname", "ssl_cert_pem_file", "ssl_key_pem_file") if settings.get(k)]
    if custom:
        if len(custom) < 3:
            raise V1ImportError([f"{path}: {custom[0]}: custom TLS needs ssl_cname, ssl_cert_pem_file and "
                                 "ssl_key_pem_file together (as v1)"])
        cert, key = (path.parent / settings["ssl_cert_pem_file"]), (path.parent / settings["ssl_key_pem_file"])
        for file, name in ((cert, "ssl_cert_pem_file"), (key, "ssl_key_pem_file")):
            if not file.is_file():
                raise V1ImportError([f"{path}: {name}: no file {file}"])
        put(compute.router, "tls.mode", "custom", src("ssl_cname"))
        put(compute.router, "tls.cname", settings["ssl_cname"], src("ssl_cname"))
        put(compute.router, "tls.cert", cert.read_text(), src("ssl_cert_pem_file"))
        compute.tls_key_file = key.resolve()
        if settings.get("leaf_domain_label"):
            report.skip(src("leaf_domain_label"), "v1 used the custom certificate when both were given; so does this")
    elif settings.get("leaf_domain_label"):
        put(compute.router, "tls.mode", "auto", src("leaf_domain_label"))
        put(compute.router, "tls.leafDomainLabel", settings["leaf_domain_label"], src("leaf_domain_label"))
        report.note(src("leaf_domain_label"), "v1 added six random characters to the label; the stack uses it as "
                                              "given (<label>.<region>.cloudapp.azure.com), with a Let's Encrypt "
                                              "certificate instead of Microsoft's")
    if settings.get("overwrite_existing_domain"):
        report.skip(src("overwrite_existing_domain"), "Azure gives a DNS label to one public IP at a time; free the "
                                                      "old one (delete v1's cluster or its IP's label) first")

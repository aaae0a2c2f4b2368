"""The stack config: Azure ML v1's defaults, every rule at its boundary, and errors that name the key."""
import pytest

from components.config import (ConfigError, config_warnings, load_stack_file, parse_stack_config)

WORKSPACE = {"name": "mlw", "location": "westeurope"}
ENVIRONMENTS = {"sklearn": {"condaFile": "models/diabetes/conda.yml"}}


def parse(cluster=None, **sections):
    cluster = {"name": "aks-prod", **(cluster or {})}
    return parse_stack_config({"workspace": WORKSPACE, "cluster": cluster, "environments": ENVIRONMENTS, **sections})


def problems(cluster=None, **sections) -> list[str]:
    with pytest.raises(ConfigError) as err:
        parse(cluster, **sections)
    return err.value.problems


def service(**fields):
    return {"environment": "sklearn", "entryScript": "models/diabetes/score.py", **fields}


# ---------------------------------------------------------------- cluster purpose and size


def test_production_default_is_three_d3_v2_nodes_and_passes():
    cfg = parse()
    assert (cfg.cluster.purpose, cfg.cluster.vm_size, cfg.cluster.node_count) == ("production", "Standard_D3_v2", 3)


def test_two_d3_v2_nodes_are_too_small_for_production():
    assert problems({"nodeCount": 2}) == [
        "cluster.nodeCount: production clusters need at least 12 vCPU; 2 x Standard_D3_v2 gives 8"]


def test_production_counts_vcpus_across_pools():
    cfg = parse({"vmSize": "Standard_D2s_v3", "nodeCount": 2,
                 "nodePools": [{"name": "cpu", "vmSize": "Standard_D4s_v5", "nodeCount": 2}]})
    assert sum(p.count * p.vcpus_per_node for p in cfg.cluster.pools()) == 12


def test_production_needs_three_nodes_even_with_enough_vcpus():
    assert problems({"vmSize": "Standard_D16s_v5", "nodeCount": 2}) == [
        "cluster.nodeCount: production clusters need at least 3 nodes; 2 x Standard_D16s_v5 gives 2"]


def test_created_b1s_system_pool_fails_aks_minimum():
    assert problems({"purpose": "dev-test", "vmSize": "Standard_B1s", "nodeCount": 1}) == [
        "cluster.vmSize: AKS needs at least 2 vCPU and 4 GiB per node in the system pool; "
        "Standard_B1s has 1 vCPU and 1 GiB"]


def test_v1_purpose_names_are_accepted():
    assert parse({"purpose": "DevTest", "vmSize": "Standard_D2s_v3", "nodeCount": 1}).cluster.purpose == "dev-test"


def test_unknown_vm_size_needs_vcpus_per_node():
    assert problems({"vmSize": "Standard_Q4_v9"})[0].startswith("cluster.vmSize: unknown VM size 'Standard_Q4_v9'")
    assert parse({"vmSize": "Standard_Q4_v9", "vcpusPerNode": 4}).cluster.pools()[0].vcpus_per_node == 4


# ---------------------------------------------------------------- names


@pytest.mark.parametrize("name", ["abc", "a" * 24, "aks-1"])
def test_cluster_names_at_the_limits_pass(name):
    assert parse({"name": name}).cluster.name == name


@pytest.mark.parametrize("name", ["a" * 25, "1aks", "ab", "aks-", "amlcompute"])
def test_bad_cluster_names_fail_naming_the_key(name):
    [problem] = problems({"name": name})
    assert problem.startswith("cluster.name: ")


def test_bad_service_name_names_the_key():
    [problem] = problems(services={"Echo": service()})
    assert problem.startswith("services.Echo: ")


def test_unknown_key_is_rejected_with_a_suggestion():
    assert problems({"nodeCont": 3}) == ["cluster.nodeCont: unknown key; did you mean nodeCount?"]
    assert problems(routr={}) == ["routr: unknown key; did you mean router?"]


# ---------------------------------------------------------------- network


def test_partial_custom_network_fails():
    [problem] = problems({"network": {"plugin": "azure", "vnetName": "vnet", "subnetName": "aks"}})
    assert problem.startswith("cluster.network.serviceCidr: a custom network needs vnetName, subnetName, "
                              "serviceCidr and dnsServiceIp together")


def test_full_custom_network_passes():
    network = {"plugin": "azure", "vnetName": "vnet", "subnetName": "aks",
               "serviceCidr": "10.0.0.0/16", "dnsServiceIp": "10.0.0.10"}
    assert parse({"network": network}).cluster.network.custom_subnet


@pytest.mark.parametrize("dns_ip", ["10.1.0.10", "10.0.0.1"])
def test_dns_service_ip_must_be_a_usable_address_in_the_service_cidr(dns_ip):
    network = {"vnetName": "vnet", "subnetName": "aks", "serviceCidr": "10.0.0.0/16", "dnsServiceIp": dns_ip}
    [problem] = problems({"network": network})
    assert problem.startswith("cluster.network.dnsServiceIp: must lie inside serviceCidr 10.0.0.0/16")


def test_kubenet_with_azure_network_policy_fails():
    assert problems({"network": {"plugin": "kubenet", "policy": "azure"}}) == [
        "cluster.network.policy: kubenet supports only calico network policy, not azure; "
        "use plugin: azure for azure or cilium"]


def test_docker_bridge_cidr_is_accepted_and_warned_about():
    cfg = parse({"network": {"dockerBridgeCidr": "172.17.0.1/16"}})
    assert "cluster.network.dockerBridgeCidr: AKS no longer uses a docker bridge; the value is ignored" \
        in config_warnings(cfg)


def test_private_cluster_and_authorized_ranges_exclude_each_other():
    [problem] = problems({"apiServer": {"privateCluster": True, "authorizedIpRanges": ["20.31.42.0/24"]}})
    assert problem.startswith("cluster.apiServer.authorizedIpRanges: a private cluster")


@pytest.mark.parametrize("example", ["203.0.113.0/24", "198.51.100.7/32", "192.0.2.0/25", "2001:db8:1::/48"])
def test_a_documentation_range_copied_from_an_example_is_refused_saying_what_belongs_there(example):
    [problem] = problems({"apiServer": {"authorizedIpRanges": ["20.31.42.0/24", example]}})
    assert problem.startswith(f"cluster.apiServer.authorizedIpRanges[1]: {example} is a documentation range "
                              "(RFC 5737/3849) that no client calls from; put the public egress ranges")
    assert "pulumi config set --path 'cluster.apiServer.authorizedIpRanges[0]'" in problem
    assert parse({"apiServer": {"authorizedIpRanges": ["203.0.112.0/24", "20.31.0.0/16"]}})  # real ranges pass


def test_local_accounts_off_needs_entra():
    [problem] = problems({"entra": {"enabled": False}})
    assert problem.startswith("cluster.localAccounts: local accounts can be turned off only with managed Entra ID")


# ---------------------------------------------------------------- attach


def test_attach_needs_a_full_resource_id():
    [problem] = problems({"name": None, "mode": "attach",
                          "resourceId": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters"})
    assert problem.startswith("cluster.resourceId: must be an AKS resource ID")


def test_attach_rejects_a_non_aks_resource_id():
    rid = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm"
    assert problems({"name": None, "mode": "attach", "resourceId": rid})[0].startswith("cluster.resourceId: ")


def test_attach_refuses_settings_of_a_cluster_to_create():
    assert problems({"mode": "attach", "resourceGroup": "rg", "nodeCount": 5}) == [
        "cluster.nodeCount: only for mode create; an attached cluster keeps its own settings"]


# ---------------------------------------------------------------- router: load balancer and TLS


def test_custom_tls_needs_cname_cert_and_key():
    [problem] = problems(router={"tls": {"mode": "custom", "cname": "ml.example.com", "cert": "PEM"}})
    assert problem == "router.tls.key: custom TLS needs cname, cert and key together; missing key"


def test_internal_load_balancer_with_an_auto_certificate_fails():
    [problem] = problems(router={"loadBalancer": {"type": "internal"},
                                 "tls": {"mode": "auto", "leafDomainLabel": "mlsvc"}})
    assert problem.startswith("router.tls.mode: auto needs a public load balancer")


def test_auto_tls_needs_a_dns_label_and_takes_an_https_acme_directory():
    [problem] = problems(router={"tls": {"mode": "auto"}})
    assert problem == "router.tls.leafDomainLabel: tls mode auto needs a leafDomainLabel"
    staging = "https://acme-staging-v02.api.letsencrypt.org/directory"
    assert parse(router={"tls": {"mode": "auto", "leafDomainLabel": "mlsvc", "acmeServer": staging}}).router.tls.acme_server == staging
    [problem] = problems(router={"tls": {"mode": "auto", "leafDomainLabel": "mlsvc", "acmeServer": "http://ca.local/dir"}})
    assert problem.startswith("router.tls.acmeServer: an https:// ACME directory URL")
    [problem] = problems(router={"tls": {"acmeServer": staging}})
    assert problem.startswith("router.tls.acmeServer:") and "mode auto only" in problem


def test_production_router_runs_at_least_two_pods():
    [problem] = problems(router={"replicas": 1})
    assert problem.startswith("router.replicas: production clusters run at least 2 router pods")
    assert parse({"purpose": "dev-test", "vmSize": "Standard_D2s_v3"}, router={"replicas": 1}).router.replicas == 1


def test_load_balancer_subnet_only_with_internal():
    [problem] = problems(router={"loadBalancer": {"subnet": "ilb"}})
    assert problem == "router.loadBalancer.subnet: a load balancer subnet is only for type internal"


# ---------------------------------------------------------------- services and endpoints


def test_service_defaults_are_azure_ml_v1s():
    spec = parse(services={"echo": service()}).services["echo"]
    assert (spec.cpu_cores, spec.memory_gb, spec.gpu_cores) == (0.1, 0.5, 0)
    assert spec.auth_mode == "key" and spec.autoscale_enabled
    a = spec.autoscale
    assert (a.min_replicas, a.max_replicas, a.target_utilization, a.refresh_seconds) == (1, 10, 70, 1)
    assert (spec.replica_max_concurrent_requests, spec.max_request_wait_time_ms, spec.scoring_timeout_ms) == (1, 500, 60000)
    p = spec.liveness_probe
    assert (p.period_seconds, p.initial_delay_seconds, p.timeout_seconds, p.success_threshold,
            p.failure_threshold) == (10, 310, 2, 1, 3)


def test_token_and_key_auth_together_fail():
    assert problems(services={"echo": service(authEnabled=True, tokenAuthEnabled=True)}) == [
        "services.echo.tokenAuthEnabled: token auth replaces key auth; set authEnabled: false to use tokens"]
    assert parse(services={"echo": service(tokenAuthEnabled=True)}).services["echo"].auth_mode == "token"


def test_min_replicas_above_max_fails():
    assert problems(services={"echo": service(autoscale={"minReplicas": 5, "maxReplicas": 4})}) == [
        "services.echo.autoscale.minReplicas: must be <= maxReplicas (5 > 4)"]


def test_fixed_replicas_exclude_autoscale():
    [problem] = problems(services={"echo": service(numReplicas=2, autoscale={"enabled": True})})
    assert problem.startswith("services.echo.numReplicas: a fixed replica count cannot be combined")
    assert not parse(services={"echo": service(numReplicas=2)}).services["echo"].autoscale_enabled


def test_limits_must_cover_requests():
    assert problems(services={"echo": service(cpuCores=1, cpuCoresLimit=0.5)}) == [
        "services.echo.cpuCoresLimit: must be >= cpuCores (1.0)"]


def test_gpu_cores_must_be_whole():
    [problem] = problems(services={"echo": service(gpuCores=0.5)})
    assert problem.startswith("services.echo.gpuCores: ")


def test_gpu_model_needs_a_gpu_pool():
    [problem] = problems(services={"echo": service(gpuCores=1)})
    assert problem.startswith("services.echo.gpuCores: GPU models need a node pool whose VM size has GPUs")
    gpu = {"nodePools": [{"name": "gpu", "vmSize": "Standard_NC4as_T4_v3"}]}
    assert parse(gpu, services={"echo": service(gpuCores=1)}).services["echo"].gpu_cores == 1
    assert problems(gpu, services={"echo": service(gpuCores=2)}) == [
        "services.echo.gpuCores: 2 GPUs do not fit on one node of pool gpu (Standard_NC4as_T4_v3 has 1)"]


def test_fpga_models_are_refused_even_with_an_fpga_pool():
    [problem] = problems({"nodePools": [{"name": "fpga", "vmSize": "Standard_NP10s"}]},
                         services={"echo": service(fpgas=1)})
    assert problem.startswith("services.echo.fpgas: AKS exposes no FPGA device to pods")


def test_unknown_environment_is_named():
    [problem] = problems(services={"echo": service(environment="torch")})
    assert problem == "services.echo.environment: no environment 'torch' in environments (sklearn)"


def test_too_many_models_fail():
    assert problems(services={"echo": service(models=[f"m{i}" for i in range(1001)])})[0].startswith(
        "services.echo.models: ")
    assert len(parse(services={"echo": service(models=[f"m{i}" for i in range(1000)])}).services["echo"].models) == 1000


def versions(*shares, **extra):
    return {f"v{i + 1}": service(trafficPercentile=share, **extra.get(f"v{i + 1}", {})) for i, share in enumerate(shares)}


def test_default_version_gets_the_unassigned_share():
    endpoint = parse(endpoints={"churn": {"versions": versions(20, 10)}}).endpoints["churn"]
    assert endpoint.default_version == "v1"
    assert endpoint.effective_traffic() == {"v1": 90, "v2": 10}


def test_is_default_moves_the_default():
    endpoint = parse(endpoints={"churn": {"versions": versions(40, 20, v2={"isDefault": True})}}).endpoints["churn"]
    assert endpoint.effective_traffic() == {"v1": 40, "v2": 60}


def test_endpoint_rules():
    assert problems(endpoints={"churn": {"versions": versions(60, 50)}}) == [
        "endpoints.churn.versions: traffic percentiles add up to 110; they may add up to at most 100"]
    assert problems(endpoints={"churn": {"versions": versions(*[10] * 7)}})[0].startswith("endpoints.churn.versions: ")
    assert len(parse(endpoints={"churn": {"versions": versions(*[10] * 6)}}).endpoints["churn"].versions) == 6
    two_controls = versions(10, 10, v1={"isControlVersionType": True}, v2={"isControlVersionType": True})
    assert problems(endpoints={"churn": {"versions": two_controls}})[0].startswith(
        "endpoints.churn.versions: at most one control version")


def test_version_names_may_be_short_but_the_service_they_run_as_follows_the_rule():
    assert "v1" in parse(endpoints={"churn": {"versions": versions(100)}}).endpoints["churn"].versions
    [problem] = problems(endpoints={"c" * 30: {"versions": versions(100)}})
    assert problem.startswith(f"endpoints.{'c' * 30}.versions.v1: runs as service '{'c' * 30}-v1', which must be 3-32")


def test_endpoint_version_may_not_shadow_a_service():
    [problem] = problems(services={"churn-v1": service()}, endpoints={"churn": {"versions": versions(100)}})
    assert problem.startswith("endpoints.churn.versions.v1: runs as service 'churn-v1'")


def test_two_endpoints_whose_versions_run_as_one_service_are_refused():
    ab_v1 = {"ab-v1": {"environment": "sklearn", "entryScript": "models/diabetes/score.py", "trafficPercentile": 100}}
    [problem] = problems(endpoints={"sent": {"versions": ab_v1}, "sent-ab": {"versions": versions(100)}})
    assert problem == ("endpoints.sent-ab.versions.v1: runs as service 'sent-ab-v1', which "
                       "endpoints.sent.versions.ab-v1 also runs as")


def test_a_service_and_an_endpoint_may_not_share_a_name():
    [problem] = problems(services={"churn": service()}, endpoints={"churn": {"versions": versions(100)}})
    assert problem == "endpoints.churn: services already defines 'churn'; a service and an endpoint need different names"


def test_all_problems_are_reported_at_once():
    found = problems({"nodeCount": 2}, services={"echo": service(cpuCores=0)})
    assert any(p.startswith("services.echo.cpuCores: ") for p in found)


# ---------------------------------------------------------------- stack files


def test_stack_files_load(tmp_path):
    for stack in ("dev", "prod", "v1"):
        cfg = load_stack_file(f"Pulumi.{stack}.yaml")
        assert cfg.cluster.purpose == {"dev": "dev-test", "prod": "production", "v1": "dev-test"}[stack]


def test_secure_values_in_a_stack_file_count_as_unset(tmp_path):
    stack = tmp_path / "Pulumi.tls.yaml"
    stack.write_text("""
config:
  aks-serving:workspace: {name: mlw, location: westeurope}
  aks-serving:cluster: {name: aks-prod}
  aks-serving:router:
    tls:
      mode: custom
      cname: ml.example.com
      cert: "-----BEGIN CERTIFICATE-----"
      key:
        secure: AAABAOq0Zm9vYmFy
""")
    cfg = load_stack_file(stack)
    assert cfg.router.tls.key is None and cfg.unset_secrets == {"router.tls.key"}
    assert any(w.startswith("router.tls.key: a secure value") for w in config_warnings(cfg))


def test_a_region_written_as_the_portal_shows_it_is_taken_as_arm_names_it():
    # `West Europe` would put a space in the monitoring rule's name and miss ARM's regional version list.
    cfg = parse({"location": "North Europe"}, workspace={"name": "w", "location": "West Europe"})
    assert (cfg.workspace.location, cfg.cluster.location) == ("westeurope", "northeurope")


def test_a_tls_certificate_that_carries_its_private_key_is_refused():
    # The cert is a plain stack value; a PEM bundle pasted whole would leave the key in the stack file in clear text.
    bundle = ("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
              "-----BEGIN EC PRIVATE KEY-----\nKEY-MATERIAL\n-----END EC PRIVATE KEY-----\n")
    found = problems(router={"tls": {"mode": "custom", "cname": "a.b.com", "cert": bundle, "key": "k"}})
    assert found == ["router.tls.cert: holds a private key (a PEM of the certificate and its key together); give the "
                     "certificate alone and set the key with `pulumi config set --secret --path router.tls.key ...`"]

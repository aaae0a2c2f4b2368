"""ModelCluster and Workspace under Pulumi's mocks: what the program registers for each stack config."""
import copy

import pulumi
import pytest
import yaml

from components.config import secret_values
from pulumi_mocks import SERVER_ID, SUBSCRIPTION, AzureStandIn, run_program, stack_file_config

MANAGED_CLUSTER = "azure-native:containerservice:ManagedCluster"
AGENT_POOL = "azure-native:containerservice:AgentPool"
ACR_PULL = "7f951dda-4ed3-4680-a7ca-43fe172d538d"


@pytest.fixture(scope="module")
def dev():
    return run_program(stack_file_config("dev"), stack="dev")


@pytest.fixture(scope="module")
def prod():
    # The stack file leaves the API server's ranges to each team (`pulumi config set --path ...`); one set here.
    config = stack_file_config("prod")
    config["cluster"]["apiServer"] = {"authorizedIpRanges": ["20.31.42.0/24"]}
    return run_program(config, stack="prod")


def with_cluster(stack: str, **cluster) -> dict:
    config = copy.deepcopy(stack_file_config(stack))
    config["cluster"].update(cluster)
    return config


# ---------------------------------------------------------------- created clusters


def test_dev_is_one_dev_test_cluster_without_user_pools(dev):
    cluster = dev.one(MANAGED_CLUSTER).inputs
    assert cluster["tags"]["cluster-purpose"] == "dev-test"
    assert cluster["sku"]["tier"] == "Free"
    [system] = cluster["agentPoolProfiles"]
    assert (system["mode"], system["vmSize"], system["count"]) == ("System", "Standard_D2s_v3", 2)
    assert "nodeTaints" not in system  # nothing else to run the router and models on
    assert dev.of_type(AGENT_POOL) == []
    assert dev.exports["clusterPurpose"] == "dev-test" and dev.exports["totalVcpus"] == 4


def test_prod_hardening_is_on_the_managed_cluster(prod):
    cluster = prod.one(MANAGED_CLUSTER).inputs
    assert cluster["tags"]["cluster-purpose"] == "production"
    assert cluster["enableRBAC"] is True
    assert cluster["aadProfile"] == {"managed": True, "enableAzureRBAC": True}
    assert cluster["disableLocalAccounts"] is True
    assert cluster["identity"]["type"] == "UserAssigned"
    assert cluster["apiServerAccessProfile"]["authorizedIPRanges"] == ["20.31.42.0/24"]
    assert cluster["oidcIssuerProfile"]["enabled"] is True
    assert cluster["securityProfile"] == {"workloadIdentity": {"enabled": True}}
    assert cluster["addonProfiles"]["azurepolicy"] == {"enabled": True}
    insights = cluster["addonProfiles"]["omsagent"]
    assert insights["enabled"] and insights["config"]["logAnalyticsWorkspaceResourceID"].endswith("/workspace-logs")
    assert cluster["autoUpgradeProfile"] == {"upgradeChannel": "stable", "nodeOSUpgradeChannel": "NodeImage"}
    network = cluster["networkProfile"]
    assert (network["networkPlugin"], network["networkPluginMode"], network["networkPolicy"],
            network["loadBalancerSku"]) == ("azure", "overlay", "azure", "standard")
    assert cluster["sku"]["tier"] == "Standard"


def test_platform_driven_changes_are_not_fought(prod):
    ignored = prod.one(MANAGED_CLUSTER).ignore_changes
    assert "kubernetesVersion" in ignored and "agentPoolProfiles[*].orchestratorVersion" in ignored
    for pool in prod.of_type(AGENT_POOL):  # both prod pools autoscale
        assert set(pool.ignore_changes) == {"orchestratorVersion", "count"}


def test_prod_user_pools_are_separate_and_gpu_pool_is_tainted(prod):
    pools = {p.inputs["nodeLabels"]["aks-serving/pool"]: p.inputs for p in prod.of_type(AGENT_POOL)}
    assert set(pools) == {"cpu", "gpu"}
    assert pools["gpu"]["nodeTaints"] == ["nvidia.com/gpu=present:NoSchedule"]
    assert pools["gpu"]["nodeLabels"]["aks-serving/accelerator"] == "nvidia-gpu"
    assert "nodeTaints" not in pools["cpu"]
    assert all(p["mode"] == "User" and p["resourceName"] == "aks-serving-prod" for p in pools.values())
    [system] = prod.one(MANAGED_CLUSTER).inputs["agentPoolProfiles"]
    assert system["nodeTaints"] == ["CriticalAddonsOnly=true:NoSchedule"]


def test_outputs_describe_pools_and_accelerators(prod):
    assert prod.exports["nodeCount"] == 7
    assert prod.exports["totalVcpus"] == 3 * 4 + 3 * 8 + 1 * 4
    gpu = next(p for p in prod.exports["nodePools"] if p["name"] == "gpu")
    assert (gpu["gpusPerNode"], gpu["gpuModel"]) == (1, "T4")


def test_kubeconfig_is_secret_and_logs_in_without_a_person(dev):
    assert "kubeconfig" in dev.secret_exports
    [user] = yaml.safe_load(dev.exports["kubeconfig"])["users"]
    args = user["user"]["exec"]["args"]
    assert args[:5] == ["get-token", "--login", "azurecli", "--server-id", SERVER_ID]
    assert "devicecode" not in args


def test_kubeconfig_login_mode_comes_from_config():
    run = run_program(with_cluster("dev", kubelogin={"loginMode": "workloadidentity"}))
    [user] = yaml.safe_load(run.exports["kubeconfig"])["users"]
    assert user["user"]["exec"]["args"][:3] == ["get-token", "--login", "workloadidentity"]


def test_kubernetes_provider_gets_the_kubeconfig(dev):
    provider = dev.one("pulumi:providers:kubernetes")
    assert provider.parent.endswith("aks-serving:index:ModelCluster::cluster")


def test_key_and_config_changes_are_updates_in_place(dev):
    # Without these the provider replaces a changed Secret or ConfigMap, delete-first (fixed names): the router
    # would briefly find no keys and every request would fail (a mock cannot run the provider's diff).
    provider = dev.one("pulumi:providers:kubernetes").inputs
    assert (provider["enableSecretMutable"], provider["enableConfigMapMutable"]) in {(True, True), ("true", "true")}


def test_user_pools_are_created_one_at_a_time_and_before_any_kubernetes_object(prod):
    # AKS answers 409 to concurrent agent pool operations; the tainted system pool runs no workload.
    pools = {p.name: p for p in prod.of_type(AGENT_POOL)}
    assert "cluster-pool-gpu" not in pools["cluster-pool-cpu"].depends_on
    assert "cluster-pool-cpu" in pools["cluster-pool-gpu"].depends_on
    assert set(pools) <= set(prod.one("pulumi:providers:kubernetes").depends_on)


def test_node_pool_count_is_ignored_only_when_autoscaled():
    pools = [{"name": "cpu", "vmSize": "Standard_D4s_v5", "nodeCount": 2}]
    run = run_program(with_cluster("dev", nodePools=pools))
    assert run.one(AGENT_POOL).ignore_changes == ["orchestratorVersion"]
    [system] = run.one(MANAGED_CLUSTER).inputs["agentPoolProfiles"]
    assert system["nodeTaints"] == ["CriticalAddonsOnly=true:NoSchedule"]


def pool_names(run) -> dict[str, str]:
    """Each user pool's Pulumi name and its name in AKS."""
    return {p.name: p.inputs["agentPoolName"] for p in run.of_type(AGENT_POOL)}


def with_pool(stack: str, index: int, **settings) -> dict:
    config = copy.deepcopy(stack_file_config(stack))
    config["cluster"]["nodePools"][index].update(settings)
    return config


def test_a_new_vm_size_or_new_zones_make_a_new_aks_pool_under_the_same_pulumi_resource(prod):
    # AKS cannot change either on a pool; a new AKS name makes the provider replace the AgentPool (its name is in
    # the resource's URL) instead of asking AKS to change it or to create a pool under a name in use.
    before = pool_names(prod)
    # Pinned: a new way of naming would replace every user pool of every deployed stack on its next `up`.
    assert before == {"cluster-pool-cpu": "cpugpwk", "cluster-pool-gpu": "gpuhsnc"}
    resized = pool_names(run_program(with_pool("prod", 0, vmSize="Standard_D16s_v5"), stack="prod"))
    rezoned = pool_names(run_program(with_pool("prod", 0, zones=["1", "2"]), stack="prod"))
    for changed in (resized, rezoned):
        assert changed.keys() == before.keys()
        assert changed["cluster-pool-cpu"] != before["cluster-pool-cpu"]
        assert changed["cluster-pool-cpu"].startswith("cpu") and changed["cluster-pool-gpu"] == before["cluster-pool-gpu"]
    assert resized["cluster-pool-cpu"] != rezoned["cluster-pool-cpu"]


def test_unchanged_settings_keep_the_aks_pool_name(prod):
    # Counts and autoscaling AKS changes in place; zones in another order or a VM size in another case are the
    # same settings (the size is sent as the SKU table spells it, the zones sorted).
    same = with_pool("prod", 0, nodeCount=4, maxNodeCount=12, zones=["3", "1", "2"], vmSize="standard_d8s_v5")
    run = run_program(same, stack="prod")
    assert pool_names(run) == pool_names(prod)
    cpu = run.named("cluster-pool-cpu").inputs
    assert (cpu["vmSize"], cpu["availabilityZones"], cpu["count"]) == ("Standard_D8s_v5", ["1", "2", "3"], 4)


def test_a_replaced_pool_is_made_before_the_old_one_is_deleted(prod):
    # azure-native asks to delete a fixed-name resource before replacing it; the new pool has another name, so the
    # program asks for the other order: the old pool's nodes are drained onto the new ones, not left empty first.
    for pool in prod.of_type(AGENT_POOL):
        assert pool.delete_before_replace is False
    assert prod.one(MANAGED_CLUSTER).delete_before_replace is None


def test_model_pods_select_the_pool_label_that_outlives_the_aks_pool_name(prod):
    labels = {p.inputs["nodeLabels"]["aks-serving/pool"] for p in prod.of_type(AGENT_POOL)}
    selectors = [r.inputs["spec"]["template"]["spec"].get("nodeSelector") for r in prod.of_type("kubernetes:apps/v1:Deployment")
                 if r.inputs["metadata"]["namespace"] == "aks-serving-models"]
    assert {"aks-serving/pool": "gpu"} in selectors and {"aks-serving/pool": "cpu"} in selectors
    assert {s["aks-serving/pool"] for s in selectors if s} <= labels


def test_a_pool_name_without_room_for_the_settings_suffix_is_refused_naming_the_key():
    config = with_pool("prod", 1, name="inference")
    assert ("cluster.nodePools[1].name: at most 8 characters ('inference' has 9): AKS allows 12 and this tool adds 4 "
            "that stand for the pool's vmSize and zones") in bad_run(config)


def test_the_cluster_does_not_ignore_its_agent_pool_profiles():
    # After `pulumi refresh` the cluster's state lists every pool (AKS reports the AgentPools there too). Ignoring
    # the whole list would stop the system pool's own settings (count, size, taint) from ever applying, and would
    # send back a pool a later replace has deleted: AKS refuses that ("A new agent pool was introduced", a known
    # azure-native failure, pulumi-azure-native#2719). Only what the platform moves is ignored.
    ignored = run_program(stack_file_config("prod"), stack="prod").one(MANAGED_CLUSTER).ignore_changes
    assert "agentPoolProfiles" not in ignored
    assert all(path.startswith("agentPoolProfiles[*].") for path in ignored if path.startswith("agentPoolProfiles"))


def test_custom_subnet_is_resolved_in_the_deployers_subscription():
    network = {"vnetName": "vnet", "subnetName": "aks", "serviceCidr": "10.0.0.0/16", "dnsServiceIp": "10.0.0.10"}
    pools = [{"name": "cpu", "vmSize": "Standard_D4s_v5"}]
    run = run_program(with_cluster("dev", network=network, nodePools=pools))
    [system] = run.one(MANAGED_CLUSTER).inputs["agentPoolProfiles"]
    assert system["vnetSubnetID"] == (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-mlw-dev/providers/"
                                      "Microsoft.Network/virtualNetworks/vnet/subnets/aks")
    assert run.one(AGENT_POOL).inputs["vnetSubnetID"] == system["vnetSubnetID"]


def test_in_a_subnet_of_your_own_the_control_plane_identity_is_granted_network_contributor_first():
    network = {"vnetName": "vnet", "subnetName": "aks", "serviceCidr": "10.0.0.0/16", "dnsServiceIp": "10.0.0.10"}
    config = with_cluster("dev", network=network)
    config["router"] = {"loadBalancer": {"type": "internal", "subnet": "ingress"}}
    run = run_program(config, stack="dev")
    cluster = run.one(MANAGED_CLUSTER)
    assert cluster.inputs["identity"]["type"] == "UserAssigned"
    [identity] = [r for r in run.of_type("azure-native:managedidentity:UserAssignedIdentity") if r.name == "cluster-control-plane"]
    assert list(cluster.inputs["identity"]["userAssignedIdentities"]) == [f"/subscriptions/{SUBSCRIPTION}/mock/{identity.name}"]
    grants = {r.name: r for r in run.of_type("azure-native:authorization:RoleAssignment") if r.name.startswith("cluster-network-")}
    vnet = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-mlw-dev/providers/Microsoft.Network/virtualNetworks/vnet"
    assert {g.inputs["scope"] for g in grants.values()} == {f"{vnet}/subnets/aks", f"{vnet}/subnets/ingress"}
    assert all(g.inputs["roleDefinitionId"].endswith("/4d97b98b-1d4f-4787-a291-c67834d212e7") for g in grants.values())
    assert set(grants) <= set(cluster.depends_on)


def test_the_kubelet_identity_is_made_first_so_its_acrpull_is_known_in_previews_and_there_before_nodes(dev):
    cluster = dev.one(MANAGED_CLUSTER)
    kubelet = dev.named("cluster-kubelet")
    profile = cluster.inputs["identityProfile"]["kubeletidentity"]
    assert (profile["resourceId"], profile["objectId"]) == (f"/subscriptions/{SUBSCRIPTION}/mock/cluster-kubelet",
                                                            "cluster-kubelet-principal-id")
    assert list(cluster.inputs["identity"]["userAssignedIdentities"]) == [f"/subscriptions/{SUBSCRIPTION}/mock/cluster-control-plane"]
    # AKS wants the control plane to hold Managed Identity Operator on a kubelet identity it is handed.
    operator = dev.named("cluster-kubelet-operator").inputs
    assert operator["scope"] == f"/subscriptions/{SUBSCRIPTION}/mock/{kubelet.name}"
    assert operator["principalId"] == "cluster-control-plane-principal-id"
    assert operator["roleDefinitionId"].endswith("/f1a07417-d97a-45cb-824c-7a7467783830")
    assert "cluster-kubelet-operator" in cluster.depends_on
    assert not [r for r in dev.resources if r.name.startswith("cluster-network-")]
    # AcrPull names the identity resource's own output, not the cluster's (unknown in a preview of any cluster
    # change, which would show the assignment as a replace; mocks cannot show unknowns, so this checks the source).
    pull = dev.named("cluster-acr-pull")
    assert pull.inputs["principalId"] == "cluster-kubelet-principal-id" and "cluster-kubelet" in pull.depends_on
    assert "cluster-aks" not in pull.depends_on


def test_a_preview_with_unknown_values_runs():
    run = run_program(stack_file_config("prod"), stack="prod", preview=True)
    assert len(run.of_type(MANAGED_CLUSTER)) == 1


# ---------------------------------------------------------------- workspace


def test_registry_has_no_admin_user_and_cluster_pulls_by_identity(dev):
    registry = dev.one("azure-native:containerregistry:Registry").inputs
    assert registry["adminUserEnabled"] is False and registry["anonymousPullEnabled"] is False
    pull = dev.named("cluster-acr-pull").inputs
    assert pull["principalId"] == "cluster-kubelet-principal-id" and pull["principalType"] == "ServicePrincipal"
    assert pull["roleDefinitionId"] == f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Authorization/roleDefinitions/{ACR_PULL}"


GLOBAL_REGISTRY = ("/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/rg-shared/providers/"
                   "Microsoft.ContainerRegistry/registries/ContosoGlobal")


def test_nodes_may_pull_what_was_found_in_the_global_registry():
    config = copy.deepcopy(stack_file_config("dev"))
    config["workspace"]["globalRegistry"] = GLOBAL_REGISTRY
    run = run_program(config, stack="dev")
    pull = run.named("cluster-acr-pull-global").inputs
    assert pull["scope"] == GLOBAL_REGISTRY and pull["principalId"] == "cluster-kubelet-principal-id"
    # The registry's own subscription: a role definition ID of the deployer's would not match the scope.
    assert pull["roleDefinitionId"] == ("/subscriptions/11111111-2222-3333-4444-555555555555/providers/"
                                        f"Microsoft.Authorization/roleDefinitions/{ACR_PULL}")
    environment_images = [r for r in run.of_type("pulumi-python:dynamic/aks-serving:RegistryImage")
                          if r.inputs["repository"].startswith("azureml/")]
    assert len(environment_images) == 2  # both look in the global registry before building
    assert {r.inputs["global_server"] for r in environment_images} == {"contosoglobal.azurecr.io"}


def test_a_global_registry_given_by_name_is_refused_saying_why():
    from components.config import ConfigError, parse_stack_config
    config = copy.deepcopy(stack_file_config("dev"))
    config["workspace"]["globalRegistry"] = "contosoglobal"
    with pytest.raises(ConfigError, match=r"workspace\.globalRegistry: 'contosoglobal' must be the registry's resource "
                                          r"ID.*the cluster's nodes are granted AcrPull on it"):
        parse_stack_config(config)


def test_model_storage_is_private_https_and_tls12(dev):
    account = dev.one("azure-native:storage:StorageAccount").inputs
    assert account["enableHttpsTrafficOnly"] is True and account["minimumTlsVersion"] == "TLS1_2"
    assert account["allowBlobPublicAccess"] is False
    containers = {r.inputs["containerName"]: r.inputs for r in dev.of_type("azure-native:storage:BlobContainer")}
    assert set(containers) == {"models", "modeldata"}  # model files, and v1's ModelDataCollector rows
    assert {c["publicAccess"] for c in containers.values()} == {"None"}
    assert 3 <= len(account["accountName"]) <= 24 and account["accountName"].isalnum()


def test_logs_and_application_insights_exist(dev):
    logs = dev.one("azure-native:operationalinsights:Workspace").inputs
    assert logs["retentionInDays"] == 30
    assert dev.one("azure-native:applicationinsights:Component").inputs["ingestionMode"] == "LogAnalytics"


DCR = "azure-native:monitor:DataCollectionRule"
DCR_ASSOCIATION = "azure-native:monitor:DataCollectionRuleAssociation"


def test_container_insights_gets_the_data_collection_rule_its_agents_need(prod):
    # useAADAuth agents collect only what an associated DCR asks for; the CLI makes both, ARM neither.
    assert prod.one(MANAGED_CLUSTER).inputs["addonProfiles"]["omsagent"]["config"]["useAADAuth"] == "true"
    rule = prod.one(DCR).inputs
    assert rule["dataCollectionRuleName"] == "MSCI-westeurope-aks-serving-prod" and rule["kind"] == "Linux"
    assert rule["location"] == "westeurope"  # the Log Analytics workspace's region
    [source] = rule["dataSources"]["extensions"]
    assert (source["name"], source["extensionName"], source["streams"]) == (
        "ContainerInsightsExtension", "ContainerInsights", ["Microsoft-ContainerInsights-Group-Default"])
    assert source["extensionSettings"]["dataCollectionSettings"]["enableContainerLogV2"] is True
    [workspace] = rule["destinations"]["logAnalytics"]
    assert workspace["workspaceResourceId"].endswith("/workspace-logs")
    assert rule["dataFlows"] == [{"streams": ["Microsoft-ContainerInsights-Group-Default"],
                                  "destinations": [workspace["name"]]}]
    association = prod.one(DCR_ASSOCIATION)
    assert association.inputs["associationName"] == "ContainerInsightsExtension"
    assert association.inputs["resourceUri"].endswith("/cluster-aks")
    assert association.inputs["dataCollectionRuleId"].endswith("/cluster-dcr")


def test_no_data_collection_rule_without_container_insights():
    run = run_program(with_cluster("dev", containerInsights=False), stack="dev")
    assert "omsagent" not in run.one(MANAGED_CLUSTER).inputs.get("addonProfiles", {})
    assert run.of_type(DCR) == [] and run.of_type(DCR_ASSOCIATION) == []


# ---------------------------------------------------------------- attached clusters


def attached(vm_size="Standard_D3_v2", count=3, name="aks-existing"):
    return {"name": name, "location": "westeurope", "agentPoolProfiles": [
        {"name": "nodepool1", "vmSize": vm_size, "count": count, "mode": "System"}],
        "aadProfile": {"managed": True, "enableAzureRBAC": True},
        "identityProfile": {"kubeletidentity": {"objectId": "existing-kubelet"}},
        "oidcIssuerProfile": {"enabled": True, "issuerURL": "https://oidc.example/existing/"},
        "securityProfile": {"workloadIdentity": {"enabled": True}}, "currentKubernetesVersion": "1.33.2"}


def test_an_attached_cluster_without_workload_identity_is_refused_naming_the_az_aks_flags():
    cluster = attached()
    del cluster["securityProfile"]
    cluster["oidcIssuerProfile"] = {"enabled": False}
    with pytest.raises(pulumi.RunError) as err:
        run_program(attach_config(), attached_cluster=cluster)
    assert ("cluster.name: AKS cluster aks-existing lacks the OIDC issuer and workload identity that model pods read "
            "their files with; run `az aks update -g rg-existing -n aks-existing --enable-oidc-issuer "
            "--enable-workload-identity`") in str(err.value)


def test_an_attached_cluster_on_a_kubernetes_version_aks_dropped_is_refused():
    cluster = {**attached(), "currentKubernetesVersion": "1.29.9"}
    with pytest.raises(pulumi.RunError, match=r"cluster.name: AKS cluster aks-existing runs Kubernetes 1.29.9 is not "
                                              r"supported by AKS in westeurope \(supported: 1.32, 1.33, 1.34\).*"
                                              r"az aks upgrade -g rg-existing -n aks-existing"):
        run_program(attach_config(), attached_cluster=cluster)


@pytest.mark.parametrize("version, problem", [
    ("1.28", "Kubernetes 1.28 is not supported by AKS in westeurope (supported: 1.32, 1.33, 1.34)"),
    ("1.35", "Kubernetes 1.35 is not supported by AKS in westeurope"),  # preview only: not for production
    ("1.33.9", "Kubernetes 1.33.9 is not a patch AKS offers in westeurope (for 1.33: 1.33.0, 1.33.1, 1.33.2)"),
    ("1.33", None), ("1.34.1", None)])
def test_a_pinned_kubernetes_version_is_checked_against_what_aks_offers_before_anything_is_created(version, problem):
    config = with_cluster("dev", kubernetesVersion=version)
    if problem is None:
        run = run_program(config, stack="dev")
        assert run.one(MANAGED_CLUSTER).inputs["kubernetesVersion"] == version
        return
    with pytest.raises(pulumi.RunError) as err:
        run_program(config, stack="dev")
    assert f"cluster.kubernetesVersion: {problem}" in str(err.value)


def attach_config(purpose="production", **cluster):
    config = copy.deepcopy(stack_file_config("dev"))
    config["cluster"] = {"mode": "attach", "purpose": purpose, "resourceGroup": "rg-existing",
                         "name": "aks-existing", **cluster}
    return config


def test_attach_registers_no_cluster_and_reads_it():
    run = run_program(attach_config(), attached_cluster=attached())
    assert run.of_type(MANAGED_CLUSTER) == [] and run.of_type(AGENT_POOL) == []
    assert ("azure-native:containerservice:getManagedCluster",
            {"resourceGroupName": "rg-existing", "resourceName": "aks-existing"}) in run.invokes
    assert run.exports["clusterName"] == "aks-existing" and run.exports["totalVcpus"] == 12
    assert run.named("cluster-acr-pull").inputs["principalId"] == "existing-kubelet"
    assert "kubeconfig" in run.secret_exports


def test_on_an_attached_cluster_model_pods_select_the_pool_by_its_aks_name():
    # Its pools are not this stack's: they carry no aks-serving/pool label, and the config names them as AKS does.
    config = attach_config()
    config["services"]["diabetes"]["nodePool"] = "nodepool1"
    run = run_program(config, attached_cluster=attached())
    [pod] = [r.inputs["spec"]["template"]["spec"] for r in run.of_type("kubernetes:apps/v1:Deployment")
             if r.inputs["metadata"]["name"] == "diabetes"]
    assert pod["nodeSelector"] == {"kubernetes.azure.com/agentpool": "nodepool1"}


def test_attach_by_resource_id():
    rid = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-existing/providers/Microsoft.ContainerService/managedClusters/aks-existing"
    config = attach_config(resourceId=rid)
    del config["cluster"]["resourceGroup"], config["cluster"]["name"]
    run = run_program(config, attached_cluster=attached())
    assert run.of_type(MANAGED_CLUSTER) == [] and run.exports["clusterName"] == "aks-existing"


def test_attached_dev_test_cluster_under_two_vcpus_warns():
    run = run_program(attach_config("dev-test"), attached_cluster=attached("Standard_B1s", 1))
    assert "cluster: dev-test clusters should have at least 2 vCPU; 1 x Standard_B1s gives 1" in run.warnings


def bad_run(config, attached_cluster=None, **kwargs) -> str:
    """Run a config that must fail, and check nothing was registered by then."""
    stand_in = AzureStandIn(attached_cluster)
    with pytest.raises(pulumi.RunError) as err:
        run_program(config, stand_in=stand_in, **kwargs)
    assert stand_in.created == []
    return str(err.value)


def test_attached_production_cluster_too_small_fails_before_anything_is_registered():
    message = bad_run(attach_config(), attached_cluster=attached("Standard_D3_v2", 2))
    assert "cluster.purpose: production clusters need at least 12 vCPU; 2 x Standard_D3_v2 gives 8" in message


def test_attached_cluster_in_another_subscription_fails():
    rid = ("/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/rg/providers/"
           "Microsoft.ContainerService/managedClusters/aks-existing")
    config = attach_config(resourceId=rid)
    del config["cluster"]["resourceGroup"], config["cluster"]["name"]
    assert "set azure-native:subscriptionId" in bad_run(config, attached_cluster=attached())


def test_missing_attached_cluster_fails_naming_the_key():
    assert "cluster.name: cannot read AKS cluster aks-existing in rg-existing" in bad_run(attach_config())


# ---------------------------------------------------------------- bad configs fail before anything exists


def with_sections(**sections) -> dict:
    return {**stack_file_config("dev"), "environments": {"e": {"condaFile": "c.yml"}}, **sections}


def echo(**fields) -> dict:
    return {"echo": {"environment": "e", "entryScript": "score.py", **fields}}


BAD_CONFIGS = {
    "production too small": (with_cluster("dev", nodeCount=2, purpose="production", vmSize="Standard_D3_v2"),
                             "cluster.nodeCount: production clusters need at least 12 vCPU"),
    "B1s system pool": (with_cluster("dev", vmSize="Standard_B1s", nodeCount=1), "cluster.vmSize: "),
    "25-char name": (with_cluster("dev", name="a" * 25), "cluster.name: "),
    "digit-first name": (with_cluster("dev", name="1aks-dev"), "cluster.name: "),
    "partial CNI": (with_cluster("dev", network={"plugin": "azure", "vnetName": "v"}), "cluster.network."),
    "kubenet + azure policy": (with_cluster("dev", network={"plugin": "kubenet", "policy": "azure"}),
                               "cluster.network.policy: "),
    "custom TLS without key": (with_sections(router={"tls": {"mode": "custom", "cname": "a.example", "cert": "C"}}),
                               "router.tls.key: "),
    "internal LB + auto TLS": (with_sections(router={"loadBalancer": {"type": "internal"},
                                                     "tls": {"mode": "auto", "leafDomainLabel": "ml"}}),
                               "router.tls.mode: "),
    "key + token auth": (with_sections(services=echo(authEnabled=True, tokenAuthEnabled=True)),
                         "services.echo.tokenAuthEnabled: "),
    "min > max replicas": (with_sections(services=echo(autoscale={"minReplicas": 3, "maxReplicas": 2})),
                           "services.echo.autoscale.minReplicas: "),
}


@pytest.mark.parametrize("case", BAD_CONFIGS, ids=list(BAD_CONFIGS))
def test_bad_configs_fail_before_anything_is_registered_naming_the_key(case):
    config, expected = BAD_CONFIGS[case]
    assert expected in bad_run(config)


# ---------------------------------------------------------------- secrets


TLS = {"mode": "custom", "cname": "ml.example.com", "cert": "-----BEGIN CERTIFICATE-----",
       "key": "-----BEGIN PRIVATE KEY-----"}


def test_a_plain_text_tls_key_is_refused_before_anything_is_registered():
    config = {**stack_file_config("dev"), "router": {"tls": TLS}}
    assert ("router.tls.key: a secret in plain text; set it with `pulumi config set --secret --path "
            "router.tls.key ...`") in bad_run(config)


def test_a_tls_key_set_as_a_secret_is_accepted():
    run = run_program({**stack_file_config("dev"), "router": {"tls": TLS}}, secret_sections=("router",))
    assert run.one(MANAGED_CLUSTER)


def test_stack_files_hold_no_plain_text_secret():
    for stack in ("dev", "prod", "v1"):
        for path, value in secret_values(stack_file_config(stack)).items():
            assert isinstance(value, dict) and set(value) == {"secure"}, f"Pulumi.{stack}.yaml: {path} in plain text"


def test_a_production_cluster_outlives_the_stack_as_v1s_detach_kept_it(prod):
    # v1's detach never deleted the cluster; so `pulumi destroy` and a switch to attach leave it, its pools, its
    # monitoring rule and the group that holds it (deleting a group deletes everything in it).
    kept = {r.name for r in prod.resources if r.retain_on_delete}
    assert {"cluster-aks", "cluster-dcr", "cluster-dcr-association",
            "workspace-rg", "cluster-control-plane", "cluster-kubelet", "cluster-kubelet-operator"} <= kept
    assert "workspace-registry" not in kept and "workspace-storage" not in kept
    # The pools go with the cluster, whatever becomes of it: a kept cluster keeps them (the engine skips the delete
    # of a resource deleted with one it drops, retained or not), while a pool replaced beside it is really deleted.
    pools = prod.of_type(AGENT_POOL)
    assert {p.name for p in pools} == {"cluster-pool-cpu", "cluster-pool-gpu"}
    assert all(p.deleted_with == "cluster-aks" and not p.retain_on_delete for p in pools)


def test_a_dev_test_cluster_is_deleted_with_its_stack_unless_retained(dev):
    assert not [r.name for r in dev.resources if r.retain_on_delete]
    run = run_program(with_cluster("dev", retainOnDelete=True), stack="dev")
    assert {"cluster-aks", "workspace-rg"} <= {r.name for r in run.resources if r.retain_on_delete}


def test_retain_on_delete_is_for_clusters_this_stack_creates():
    from components.config import ConfigError, parse_stack_config
    config = attach_config()
    config["cluster"]["retainOnDelete"] = True
    with pytest.raises(ConfigError, match="cluster.retainOnDelete: only for mode create; an attached cluster keeps"):
        parse_stack_config(config)

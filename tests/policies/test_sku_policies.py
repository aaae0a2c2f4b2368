"""VM size, cluster capacity and accelerator policies: Analyze for the allow-list, AnalyzeStack for the rest."""
from policy_kit import (
    advisory, agent_pool, container, deployment, managed_cluster, mandatory, only, pod_spec, pool_profile, resource,
)


def test_allowed_vm_sizes_by_default_are_the_sizes_the_pack_knows(pack):
    assert pack.analyze(agent_pool("cpu", "Standard_D8s_v5", 3.0)) == []
    found = only(pack.analyze(agent_pool("cpu", "Standard_Z9_v9", 3.0)), "allowed-vm-sizes")
    assert mandatory(found) == found
    assert "AgentPool cluster-pool-cpu: pool cpu uses Standard_Z9_v9, a size whose vCPUs and accelerators this " \
           "pack does not know" in found[0].message
    found = only(pack.analyze(managed_cluster(pools=[pool_profile(vm_size=None)])), "allowed-vm-sizes")
    assert "pool system sets no vmSize, so AKS picks its regional default" in found[0].message


def test_allowed_vm_sizes_from_the_pack_config(start_pack):
    configured = start_pack({"allowed-vm-sizes": {"allowedVmSizes": ["Standard_D4s_v5", "Standard_Z9_v9"]}})
    assert configured.analyze(agent_pool("cpu", "Standard_Z9_v9", 3.0)) == []  # listed, though unknown
    found = configured.analyze(managed_cluster(pools=[pool_profile(), pool_profile("user", "Standard_D8s_v5")]))
    assert [d.policy for d in mandatory(found)] == ["allowed-vm-sizes"]
    assert "pool user uses Standard_D8s_v5, which is not an allowed VM size (Standard_D4s_v5, Standard_Z9_v9). " \
           "Fix: pick an allowed size, or add Standard_D8s_v5 to allowedVmSizes" in found[0].message


def test_production_capacity_counts_every_pool_of_the_cluster(pack):
    small = managed_cluster(pools=[pool_profile(count=2.0)])  # 2 x 4 vCPU
    found = only(pack.analyze_stack([small]), "production-cluster-capacity")
    assert len(found) == 2 and mandatory(found) == found
    messages = [d.message for d in found]
    assert "ManagedCluster aks-serving-prod (Pulumi resource cluster-aks) is tagged production: production " \
           "clusters need at least 12 vCPU; 2 x Standard_D4s_v5 gives 8. Fix: add nodes" in messages[0]
    assert "need at least 3 nodes; 2 x Standard_D4s_v5 gives 2" in messages[1]
    assert found[0].urn == small.urn
    # The same system pool and a user pool (an AgentPool resource of the same cluster) make the minimum.
    assert pack.analyze_stack([small, agent_pool("cpu", "Standard_D2s_v3", 2.0)]) == []
    # An AgentPool of another cluster does not count.
    other = agent_pool("cpu", "Standard_D8s_v5", 3.0, cluster="another-cluster")
    assert len(mandatory(pack.analyze_stack([small, other]))) == 2


def test_an_autoscaled_pool_counts_at_its_minimum(pack):
    small = managed_cluster(pools=[pool_profile(count=2.0)])
    autoscaled = agent_pool("cpu", "Standard_D2s_v3", 5.0, enableAutoScaling=True, minCount=1.0, maxCount=10.0)
    found = pack.analyze_stack([small, autoscaled])
    assert [d.policy for d in found] == ["production-cluster-capacity"]
    assert "2 x Standard_D4s_v5 + 1 x Standard_D2s_v3 gives 10" in found[0].message


def test_a_pool_whose_cluster_name_is_unknown_is_matched_by_its_dependency(pack):
    small = managed_cluster(pools=[pool_profile(count=2.0)])
    pending = agent_pool("cpu", "Standard_D8s_v5", 3.0, cluster="04da6b54-80e4-46f7-96ec-b56ff0331ba9",
                         property_dependencies={"resourceName": [small.urn]})
    assert pack.analyze_stack([small, pending]) == []
    unmatched = agent_pool("cpu", "Standard_D8s_v5", 3.0, cluster="04da6b54-80e4-46f7-96ec-b56ff0331ba9")
    found = pack.analyze_stack([small, unmatched])
    assert mandatory(found) == []
    said = advisory(found, "production-cluster-capacity")
    assert "AgentPool cluster-pool-cpu cannot be counted yet" in said[0].message


def test_dev_test_capacity_is_advice(pack):
    tiny = managed_cluster("aks-dev", "dev-test", [pool_profile(vm_size="Standard_B1s", count=1.0)])
    found = only(pack.analyze_stack([tiny]), "devtest-cluster-capacity")
    assert [d.level for d in found] == ["advisory"]
    assert "is tagged dev-test: dev-test clusters should have at least 2 vCPU; 1 x Standard_B1s gives 1" \
           in found[0].message
    assert pack.analyze_stack([managed_cluster("aks-dev", "dev-test", [pool_profile(vm_size="Standard_D2s_v3",
                                                                                    count=1.0)])]) == []
    # A dev-test cluster is not held to production's minimum, and v1's spellings count.
    assert pack.analyze_stack([managed_cluster("aks-dev", "DevTest", [pool_profile(count=1.0)])]) == []
    assert len(pack.analyze_stack([managed_cluster(purpose="FastProd", pools=[pool_profile(count=1.0)])])) == 2


def _gpu_model(**spec):
    resources = {"requests": {"cpu": "1", "memory": "4Gi"},
                 "limits": {"cpu": "1", "memory": "4Gi", "nvidia.com/gpu": 1.0}}
    return deployment("detector", spec=pod_spec([container(resources=resources)], **spec))


def test_a_gpu_model_needs_a_gpu_pool(pack):
    cpu_only = [managed_cluster(), agent_pool("cpu", "Standard_D8s_v5", 3.0)]
    found = only(pack.analyze_stack(cpu_only + [_gpu_model()]), "accelerator-node-pool")
    assert mandatory(found) == found
    assert "Deployment aks-serving-models/detector (Pulumi resource detector-deployment) requests nvidia.com/gpu " \
           "(container 'model'), but no node pool it can run on has GPUs: pool system (Standard_D4s_v5), pool cpu " \
           "(Standard_D8s_v5). Fix: add a node pool whose VM size has GPUs" in found[0].message
    gpu = agent_pool("gpu", "Standard_NC4as_T4_v3", 1.0, nodeLabels={"aks-serving/pool": "gpu"})
    assert pack.analyze_stack(cpu_only + [gpu, _gpu_model()]) == []
    assert pack.analyze_stack(cpu_only + [gpu, _gpu_model(nodeSelector={"aks-serving/pool": "gpu"})]) == []
    # Pinned to the CPU pool, the GPU pool does not help.
    pinned = _gpu_model(nodeSelector={"aks-serving/pool": "cpu"})
    found = only(pack.analyze_stack(cpu_only + [gpu, pinned]), "accelerator-node-pool")
    assert "no node pool it can run on has GPUs: pool cpu (Standard_D8s_v5)" in found[0].message
    # A CPU model is not affected.
    assert pack.analyze_stack(cpu_only + [deployment()]) == []


def test_an_fpga_request_needs_an_fpga_pool(pack):
    fpga = {"requests": {"cpu": "1", "memory": "4Gi"},
            "limits": {"cpu": "1", "memory": "4Gi", "xilinx.com/fpga-xilinx_u250_gen3x16_xdma_shell_3_1-0": 1.0}}
    model = deployment("hw", spec=pod_spec([container(resources=fpga)]))
    found = only(pack.analyze_stack([managed_cluster(), model]), "accelerator-node-pool")
    assert "no node pool it can run on has FPGAs" in found[0].message
    assert pack.analyze_stack([managed_cluster(), agent_pool("fpga", "Standard_NP10s", 1.0), model]) == []


def test_an_accelerator_without_any_pool_in_the_stack_is_undecided(pack):
    found = pack.analyze_stack([_gpu_model()])  # an attached cluster: no pools in the stack
    assert mandatory(found) == []
    assert "the stack registers no AKS node pools" in advisory(found, "accelerator-node-pool")[0].message


def test_stack_policies_read_outputs_as_the_engine_sends_them(pack):
    """AnalyzeStack gets outputs: azure-native names the cluster and pool `name` and keeps the rest in `id`."""
    cluster_id = "/subscriptions/s/resourceGroups/rg-test/providers/Microsoft.ContainerService/managedClusters/aks-p"
    cluster = resource("azure-native:containerservice:ManagedCluster", "cluster-aks", {
        "name": "aks-p", "id": cluster_id, "tags": {"cluster-purpose": "production"},
        "agentPoolProfiles": [pool_profile(count=2.0)]})
    pool = resource("azure-native:containerservice:AgentPool", "cluster-pool-cpu", {
        "name": "cpu", "id": f"{cluster_id}/agentPools/cpu", "vmSize": "Standard_D8s_v5", "count": 3.0})
    assert pack.analyze_stack([cluster, pool]) == []
    found = pack.analyze_stack([cluster])
    assert "ManagedCluster aks-p (Pulumi resource cluster-aks) is tagged production" in mandatory(found)[0].message
    other_id = pool.properties["id"].replace("aks-p", "aks-q")
    elsewhere = resource(pool.type, pool.name, dict(pool.properties, id=other_id))
    assert len(mandatory(pack.analyze_stack([cluster, elsewhere]))) == 2

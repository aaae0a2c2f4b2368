from policies.rules.capacity import (
    Finding,
    PoolCapacity,
    describe_pools,
    purpose_findings,
    system_pool_findings,
    total_nodes,
    total_vcpus,
)


def pool(count, size="Standard_D3_v2", vcpus=4, memory=14.0, name="system", mode="System"):
    return PoolCapacity(name=name, vm_size=size, count=count, vcpus_per_node=vcpus, memory_gib=memory, mode=mode)


def test_totals_and_description_span_all_pools():
    pools = [pool(3, "Standard_D2s_v3", 2, 8.0), pool(1, "Standard_NC6s_v3", 6, 112.0, "gpu", "User")]
    assert total_vcpus(pools) == 12
    assert total_nodes(pools) == 4
    assert describe_pools(pools) == "3 x Standard_D2s_v3 + 1 x Standard_NC6s_v3"


def test_description_adds_up_pools_of_one_size():
    assert describe_pools([pool(2), pool(1, name="user", mode="User")]) == "3 x Standard_D3_v2"


def test_production_with_azure_ml_defaults_passes():
    assert purpose_findings("production", [pool(3)], attached=False) == []


def test_production_two_d3_v2_nodes_fails_both_rules():
    assert purpose_findings("production", [pool(2)], attached=False) == [
        Finding("error", "nodeCount", "production clusters need at least 12 vCPU; 2 x Standard_D3_v2 gives 8"),
        Finding("error", "nodeCount", "production clusters need at least 3 nodes; 2 x Standard_D3_v2 gives 2"),
    ]


def test_production_vcpu_boundary_over_three_nodes():
    passing = [pool(2, "Standard_D4s_v5", 4, 16.0), pool(1, "Standard_D4s_v5", 4, 16.0, "user", "User")]
    assert purpose_findings("production", passing, attached=True) == []
    # 11 vCPU over 3 nodes: 4 + 4 + 3 (an unknown size the user described with vcpusPerNode: 3)
    failing = [pool(2, "Standard_D4s_v5", 4, 16.0), pool(1, "Custom_X", 3, None, "user", "User")]
    assert purpose_findings("production", failing, attached=True) == [Finding(
        "error", "nodeCount",
        "production clusters need at least 12 vCPU; 2 x Standard_D4s_v5 + 1 x Custom_X gives 11")]


def test_production_node_rule_holds_even_with_enough_vcpus():
    findings = purpose_findings("production", [pool(2, "Standard_D16s_v5", 16, 64.0)], attached=False)
    assert [f.message for f in findings] == [
        "production clusters need at least 3 nodes; 2 x Standard_D16s_v5 gives 2"]


def test_dev_test_attached_under_two_vcpu_warns():
    assert purpose_findings("dev-test", [pool(1, "Standard_B1s", 1, 1.0)], attached=True) == [Finding(
        "warning", "nodeCount", "dev-test clusters should have at least 2 vCPU; 1 x Standard_B1s gives 1")]


def test_dev_test_attached_at_two_vcpu_is_fine():
    assert purpose_findings("dev-test", [pool(1, "Standard_B2s", 2, 4.0)], attached=True) == []


def test_dev_test_created_leaves_the_minimum_to_the_system_pool_rule():
    assert purpose_findings("dev-test", [pool(1, "Standard_B1s", 1, 1.0)], attached=False) == []


def test_unknown_purpose_is_a_programming_error():
    try:
        purpose_findings("fastprod", [pool(3)], attached=False)
    except ValueError as error:
        assert "fastprod" in str(error)
    else:
        raise AssertionError("expected ValueError")


def test_system_pool_too_small():
    assert system_pool_findings(pool(1, "Standard_B1s", 1, 1.0)) == [Finding(
        "error", "vmSize",
        "AKS needs at least 2 vCPU and 4 GiB per node in the system pool; Standard_B1s has 1 vCPU and 1 GiB")]


def test_system_pool_memory_alone_fails():
    findings = system_pool_findings(pool(3, "Standard_B2ts_v2", 2, 1.0))
    assert [f.message for f in findings] == [
        "AKS needs at least 2 vCPU and 4 GiB per node in the system pool; Standard_B2ts_v2 has 2 vCPU and 1 GiB"]


def test_system_pool_at_the_minimum_passes():
    assert system_pool_findings(pool(1, "Standard_B2s", 2, 4.0)) == []


def test_system_pool_with_unknown_memory_checks_vcpus_only():
    assert system_pool_findings(pool(1, "Custom_X", 2, None)) == []
    assert [f.message for f in system_pool_findings(pool(1, "Custom_X", 1, None))] == [
        "AKS needs at least 2 vCPU per node in the system pool; Custom_X has 1 vCPU"]

"""The pack over the analyzer protocol: what it tells the engine about itself, how its config is applied,
and what it does with the unknown values of a preview (never a mandatory violation)."""
import pytest

from policy_kit import (
    IMAGE, UNKNOWN, advisory, agent_pool, container, deployment, hpa, managed_cluster, mandatory, pod_spec,
    pool_profile, resource, router_config_map, router_document,
)
from tools.analyzer import PackFailed, PolicyPack

POLICIES = {
    "aks-names", "registry-name", "storage-account-name", "kubernetes-names", "serving-names",
    "allowed-vm-sizes", "production-cluster-capacity", "devtest-cluster-capacity", "accelerator-node-pool",
    "no-hpa-on-models", "router-hpa-production-only",
    "images-by-digest", "container-resources", "pod-security-restricted",
    "production-service-auth", "endpoint-traffic", "models-per-service",
}
STACK_POLICIES = {"production-cluster-capacity", "devtest-cluster-capacity", "accelerator-node-pool",
                  "no-hpa-on-models", "router-hpa-production-only", "production-service-auth"}


def test_the_pack_describes_its_policies_mandatory_by_default(pack):
    by_name = {p.name: p for p in pack.policies}
    assert set(by_name) == POLICIES
    assert {n for n, p in by_name.items() if p.kind == "stack"} == STACK_POLICIES
    assert {n for n, p in by_name.items() if p.level != "mandatory"} == {"devtest-cluster-capacity"}
    assert by_name["devtest-cluster-capacity"].level == "advisory"
    assert all(p.description for p in pack.policies)
    schema = by_name["models-per-service"].config_schema["properties"]["maxModelsPerService"]
    assert schema["default"] == 1000 and schema["type"] == "integer"
    assert by_name["allowed-vm-sizes"].config_schema["properties"]["allowedVmSizes"]["default"] == []


def test_a_pack_that_cannot_start_says_why(tmp_path):
    with pytest.raises(PackFailed, match="make venv"):
        PolicyPack(python=tmp_path / "no-python").start()
    (tmp_path / "__main__.py").write_text("raise SystemExit('no pack here')\n")
    with pytest.raises(PackFailed, match="exited with 1 before printing its port"):
        PolicyPack(pack_dir=tmp_path, start_timeout=30).start()


def test_config_sets_properties_and_enforcement_levels(start_pack):
    pool = agent_pool("cpu", "Standard_D8s_v5", 3.0)
    big = deployment(models="900")
    configured = start_pack({
        "allowed-vm-sizes": {"allowedVmSizes": ["standard_d4s_v5"]},  # case-insensitive
        "models-per-service": {"maxModelsPerService": 500, "enforcementLevel": "advisory"},
        "images-by-digest": "disabled",
    })
    found = configured.analyze(pool)
    assert [d.policy for d in mandatory(found)] == ["allowed-vm-sizes"]
    assert "not an allowed VM size (standard_d4s_v5)" in found[0].message
    assert configured.analyze(resource(pool.type, "ok", dict(pool.properties, vmSize="Standard_D4s_v5"))) == []
    tagged = deployment(models="900", spec=pod_spec([container(image="python:3.11")]))
    found = configured.analyze(tagged)
    assert [(d.policy, d.level) for d in found] == [("models-per-service", "advisory")]
    assert configured.analyze(big)[0].message.endswith(
        "loads 900 models; a service may load at most 500. Fix: split the models over several services "
        "(or endpoint versions)")


def test_all_sets_every_level(start_pack):
    relaxed = start_pack({"all": "advisory"})
    found = relaxed.analyze(deployment(spec=pod_spec([container(image="python:3.11")])))
    assert found and not mandatory(found)


# ---- unknowns -------------------------------------------------------------------------------------------

_CLUSTER_POOLS_UNKNOWN = [managed_cluster(pools=[pool_profile(count=1.0)]),
                          agent_pool("cpu", "Standard_D8s_v5", UNKNOWN)]
_ROUTER_HPA = deployment("router", "router", namespace="aks-serving")
_GPU = deployment(spec=pod_spec([container(resources={"limits": {"cpu": "1", "memory": "1Gi", "nvidia.com/gpu": 1},
                                                      "requests": {"cpu": "1", "memory": "1Gi"}})]))

# policy -> the resources of a request whose deciding value is unknown (a list: AnalyzeStack)
UNKNOWN_CASES = {
    "aks-names": managed_cluster(name=UNKNOWN),
    "registry-name": resource("azure-native:containerregistry:Registry", "registry", {"registryName": UNKNOWN}),
    "storage-account-name": resource("azure-native:storage:StorageAccount", "storage", {"accountName": UNKNOWN}),
    "kubernetes-names": resource("kubernetes:core/v1:Service", "svc", {"metadata": {"name": UNKNOWN}}),
    "serving-names": router_config_map(text=UNKNOWN),
    "allowed-vm-sizes": agent_pool("cpu", UNKNOWN, 3.0),
    "production-cluster-capacity": _CLUSTER_POOLS_UNKNOWN,
    "devtest-cluster-capacity": [managed_cluster(purpose="dev-test", pools=[pool_profile(vm_size="Standard_B1s",
                                                                                         count=UNKNOWN)])],
    "accelerator-node-pool": [managed_cluster(pools=[pool_profile(vm_size=UNKNOWN)]), _GPU],
    "no-hpa-on-models": [deployment(), hpa("scaler", UNKNOWN)],
    "router-hpa-production-only": [managed_cluster(purpose=UNKNOWN), _ROUTER_HPA,
                                   hpa("router", "router", namespace="aks-serving")],
    "images-by-digest": deployment(spec=pod_spec([container(image=UNKNOWN)])),
    "container-resources": deployment(spec=pod_spec([container(resources=UNKNOWN)])),
    "pod-security-restricted": deployment(spec=pod_spec([container(securityContext=UNKNOWN)])),
    "production-service-auth": [managed_cluster(), router_config_map(text=UNKNOWN)],
    "endpoint-traffic": router_config_map(text=UNKNOWN),
    "models-per-service": deployment(models=UNKNOWN),
}


@pytest.mark.parametrize("policy", sorted(UNKNOWN_CASES))
def test_an_unknown_value_is_advisory_never_mandatory(pack, policy):
    case = UNKNOWN_CASES[policy]
    found = pack.analyze_stack(case) if isinstance(case, list) else pack.analyze(case)
    assert mandatory(found) == []
    said = advisory(found, policy)
    assert said, f"{policy} said nothing about the unknown value: {found}"
    assert all(d.message.startswith(f"can't run policy '{policy}' from policy pack 'aks-serving") for d in said)
    assert "not known" in said[0].message


def test_every_policy_has_an_unknown_case():
    assert set(UNKNOWN_CASES) == POLICIES


def test_what_is_known_is_still_decided_beside_an_unknown(pack):
    both = deployment(spec=pod_spec([container(image=UNKNOWN), container("sidecar", image="nginx:1.27")]))
    found = pack.analyze(both)
    assert [d.policy for d in mandatory(found)] == ["images-by-digest"]
    assert "container 'sidecar' runs nginx:1.27" in mandatory(found)[0].message
    assert "container 'model' is not known yet" in advisory(found, "images-by-digest")[0].message


def test_unknowns_anywhere_in_a_known_good_stack_give_no_mandatory_violation(pack):
    """Every string of a passing stack unknown, one at a time per resource (a preview's worst case)."""
    good = [managed_cluster(), agent_pool("cpu", "Standard_D8s_v5", 3.0), deployment(), _ROUTER_HPA,
            hpa("router", "router", namespace="aks-serving"), router_config_map(document=router_document()),
            resource("azure-native:containerregistry:Registry", "registry", {"registryName": "mlwtestacr1"})]
    for index, item in enumerate(good):
        blanked = type(item)(**{**item.__dict__, "properties": _blank(item.properties)})
        stack = good[:index] + [blanked] + good[index + 1:]
        found = pack.analyze_all(stack)
        assert mandatory(found) == [], (item.name, [d.message for d in mandatory(found)])


def _blank(value):
    """Every string leaf replaced by the engine's unknown (keys stay: the engine knows the shape)."""
    if isinstance(value, dict):
        return {k: _blank(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_blank(v) for v in value]
    return UNKNOWN if isinstance(value, str) else value


def test_a_resource_of_another_kind_is_left_alone(pack):
    assert pack.analyze(resource("azure-native:storage:BlobContainer", "models", {"containerName": "Models!"})) == []
    assert IMAGE.endswith("ab" * 32)

"""Naming policies: a violating and a passing resource each, through Analyze."""
import pytest

from policy_kit import (
    agent_pool, changed, deployment, managed_cluster, mandatory, only, pool_profile, resource, router_config_map,
    router_document,
)

REGISTRY = "azure-native:containerregistry:Registry"
STORAGE = "azure-native:storage:StorageAccount"


def test_aks_names(pack):
    assert pack.analyze(managed_cluster(name="aks-serving-prod")) == []
    found = only(pack.analyze(managed_cluster(name="1aks")), "aks-names")
    assert len(mandatory(found)) == 1
    message = found[0].message
    assert message.startswith("AKS cluster names are 3-24")  # the rule
    assert "ManagedCluster cluster-aks: cluster name (resourceName) '1aks' must be 3-24 characters" in message
    assert "Fix: rename the cluster (cluster.name in the stack config)" in message
    found = only(pack.analyze(managed_cluster(pools=[pool_profile(name="System_1")])), "aks-names")
    assert "node pool name 'System_1' must be 1-12 lowercase letters and digits" in found[0].message
    assert pack.analyze(agent_pool("gpu", "Standard_NC4as_T4_v3", 1.0)) == []
    found = only(pack.analyze(agent_pool("gpu-pool", "Standard_NC4as_T4_v3", 1.0)), "aks-names")
    assert "AgentPool cluster-pool-gpu-pool: node pool name (agentPoolName) 'gpu-pool'" in found[0].message


def test_a_reserved_cluster_name_is_refused(pack):
    found = only(pack.analyze(managed_cluster(name="local")), "aks-names")
    assert "must not be a name Azure ML reserves (amlcompute, local, containerinstance)" in found[0].message


@pytest.mark.parametrize("name, ok", [("mlwdevacrq7x2k9", True), ("acr01", True), ("mlw-dev-acr", False),
                                      ("acr", False), ("a" * 51, False)])
def test_registry_name(pack, name, ok):
    found = pack.analyze(resource(REGISTRY, "workspace-registry", {"registryName": name, "sku": {"name": "Premium"}}))
    if ok:
        assert found == []
    else:
        assert [d.policy for d in mandatory(found)] == ["registry-name"]
        assert f"Registry workspace-registry: registry name (registryName) '{name}' must be 5-50 letters" \
            in found[0].message
        assert "Fix: use 5-50 letters and digits, no hyphens" in found[0].message


@pytest.mark.parametrize("name, ok", [("mlwdevmdlq7x2k9", True), ("abc", True), ("MlwDev", False),
                                      ("mlw-dev", False), ("a" * 25, False)])
def test_storage_account_name(pack, name, ok):
    found = pack.analyze(resource(STORAGE, "workspace-storage", {"accountName": name, "kind": "StorageV2"}))
    if ok:
        assert found == []
    else:
        assert [d.policy for d in mandatory(found)] == ["storage-account-name"]
        assert "must be 3-24 lowercase letters and digits" in found[0].message


def test_kubernetes_names(pack):
    assert pack.analyze(deployment()) == []
    bad = deployment()
    bad = resource(bad.type, bad.name, changed(bad.properties, "metadata.name", "Diabetes_Model"))
    found = only(pack.analyze(bad), "kubernetes-names")
    assert "metadata.name 'Diabetes_Model' must be a DNS-1123 subdomain" in found[0].message
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "router.peers", "namespace": "Serving"},
               "spec": {"ports": [{"port": 80.0}]}}
    found = only(pack.analyze(resource("kubernetes:core/v1:Service", "peers", service)), "kubernetes-names")
    messages = [d.message for d in found]
    assert any("metadata.name 'router.peers' must be a DNS-1123 label" in m for m in messages)
    assert any("metadata.namespace 'Serving' must be at most 63 lowercase letters" in m for m in messages)
    ok = changed(service, "metadata", {"name": "router-peers", "namespace": "aks-serving"})
    assert pack.analyze(resource("kubernetes:core/v1:Service", "peers", ok)) == []
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "aks-serving-models"}}
    assert pack.analyze(resource("kubernetes:core/v1:Namespace", "ns", namespace)) == []
    # An object without metadata.name gets one from the provider (autonaming): nothing to check.
    assert pack.analyze(resource("kubernetes:core/v1:Service", "auto", {"metadata": {}})) == []


def test_serving_names(pack):
    assert pack.analyze(router_config_map()) == []
    document = router_document()
    document["services"]["Diabetes"] = document["services"].pop("diabetes")
    document["endpoints"]["ab"] = document["endpoints"].pop("sentiment-ab")
    document["endpoints"]["ab"]["versions"]["V2"] = document["endpoints"]["ab"]["versions"].pop("v2")
    found = only(pack.analyze(router_config_map(document)), "serving-names")
    messages = "\n".join(d.message for d in found)
    assert "ConfigMap aks-serving/router-config (Pulumi resource router-config): service name 'Diabetes' must be " \
           "3-32 characters of lowercase letters" in messages
    assert "endpoint name 'ab' must be 3-32 characters" in messages
    assert "endpoint ab: version name 'V2' must be lowercase letters, digits and hyphens" in messages
    assert "version name 'v1'" not in messages  # short version names are fine
    assert all(d.mandatory for d in found)


def test_a_router_config_the_router_cannot_read(pack):
    found = pack.analyze(router_config_map(text="services: [unclosed"))
    assert {d.policy for d in mandatory(found)} == {"serving-names", "endpoint-traffic"}
    assert "the router cannot start with this RouterConfig (data.config.yaml is not valid YAML" in found[0].message
    # Other ConfigMaps of the router (its token keys) are not its config.
    keys = resource("kubernetes:core/v1:ConfigMap", "router-token-keys", {
        "metadata": {"name": "router-token-keys", "labels": {"app.kubernetes.io/component": "router"}},
        "data": {"public.pem": "-----BEGIN PUBLIC KEY-----"}})
    assert pack.analyze(keys) == []
    json_config = router_config_map(text='{"services": {"Bad_Name": {}}}', key="config.json")
    assert [d.policy for d in pack.analyze(json_config)] == ["serving-names"]

"""Autoscaler policies (AnalyzeStack): nothing but the router scales models; the router's HPA on production only."""
import pytest

from policy_kit import UNKNOWN, advisory, deployment, hpa, managed_cluster, mandatory, only, scaled_object

MODEL = deployment("diabetes")
ROUTER = deployment("router", "router", namespace="aks-serving")
ROUTER_HPA = hpa("router", "router", namespace="aks-serving")


@pytest.mark.parametrize("scaler", [hpa("diabetes", "diabetes"), hpa("diabetes", "diabetes", version="v1"),
                                    scaled_object("diabetes", "diabetes")], ids=["hpa-v2", "hpa-v1", "keda"])
def test_no_autoscaler_targets_a_model(pack, scaler):
    found = only(pack.analyze_stack([managed_cluster(), MODEL, scaler]), "no-hpa-on-models")
    assert mandatory(found) == found and len(found) == 1
    assert "scales the model Deployment aks-serving-models/diabetes (Pulumi resource diabetes-deployment); the " \
           "router scales model Deployments itself" in found[0].message
    assert "Fix: remove the autoscaler and set the service's autoscale settings" in found[0].message
    assert found[0].urn == scaler.urn


def test_autoscalers_of_other_workloads_are_fine(pack):
    other = deployment("batch-scorer", "worker")
    assert pack.analyze_stack([managed_cluster(), MODEL, other, hpa("batch-scorer", "batch-scorer")]) == []
    # Same name, other namespace: not the model.
    assert pack.analyze_stack([MODEL, hpa("diabetes", "diabetes", namespace="elsewhere")]) == []
    # Not a Deployment.
    assert pack.analyze_stack([MODEL, hpa("diabetes", "diabetes", kind="StatefulSet")]) == []


def test_a_scaler_labelled_for_a_model_is_one(pack):
    labelled = hpa("external", "not-in-this-stack", labels={"app.kubernetes.io/component": "model"})
    assert [d.policy for d in mandatory(pack.analyze_stack([labelled]))] == ["no-hpa-on-models"]


def test_a_target_known_only_by_dependency(pack):
    """In a preview the target's name may be unknown; the engine still reports what the spec depends on."""
    by_dependency = hpa("diabetes", UNKNOWN, property_dependencies={"spec": [MODEL.urn]})
    assert [d.policy for d in mandatory(pack.analyze_stack([MODEL, by_dependency]))] == ["no-hpa-on-models"]
    found = pack.analyze_stack([MODEL, hpa("diabetes", UNKNOWN)])
    assert mandatory(found) == [] and advisory(found, "no-hpa-on-models")


def test_the_router_hpa_only_on_production(pack):
    assert pack.analyze_stack([managed_cluster(), ROUTER, ROUTER_HPA]) == []
    found = only(pack.analyze_stack([managed_cluster("aks-dev", "dev-test"), ROUTER, ROUTER_HPA]),
                 "router-hpa-production-only")
    assert mandatory(found) == found
    assert "HorizontalPodAutoscaler aks-serving/router (Pulumi resource router) scales the router Deployment " \
           "aks-serving/router (Pulumi resource router-deployment) on a dev-test cluster" in found[0].message
    assert "Fix: create the router HPA only when the cluster's purpose is production" in found[0].message
    # KEDA on the router counts too; the router without an autoscaler is fine anywhere.
    keda = scaled_object("router", "router", namespace="aks-serving")
    assert len(mandatory(pack.analyze_stack([managed_cluster("aks-dev", "dev-test"), ROUTER, keda]))) == 1
    assert pack.analyze_stack([managed_cluster("aks-dev", "dev-test"), ROUTER]) == []


def test_the_router_hpa_on_an_attached_cluster_takes_the_purpose_from_config(pack, start_pack):
    found = pack.analyze_stack([ROUTER, ROUTER_HPA])
    assert mandatory(found) == []
    assert "set clusterPurpose in the pack config" in advisory(found, "router-hpa-production-only")[0].message
    production = start_pack({"router-hpa-production-only": {"clusterPurpose": "production"}})
    assert production.analyze_stack([ROUTER, ROUTER_HPA]) == []
    dev = start_pack({"router-hpa-production-only": {"clusterPurpose": "dev-test"}})
    assert len(mandatory(dev.analyze_stack([ROUTER, ROUTER_HPA]))) == 1


def test_an_unknown_component_label_is_undecided(pack):
    unlabelled = deployment("diabetes", labels={"app.kubernetes.io/component": UNKNOWN})
    found = pack.analyze_stack([managed_cluster("aks-dev", "dev-test"), unlabelled, hpa("diabetes", "diabetes")])
    assert mandatory(found) == []
    assert {d.policy for d in advisory(found)} == {"no-hpa-on-models", "router-hpa-production-only"}

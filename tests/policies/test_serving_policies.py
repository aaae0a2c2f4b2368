"""Serving policies: auth on production (AnalyzeStack), endpoint traffic and models per service (Analyze)."""
import pytest

from policy_kit import (
    advisory, deployment, managed_cluster, mandatory, only, router_config_map, router_document,
)


def _with_open_service() -> dict:
    document = router_document()
    document["services"]["diabetes"]["auth"] = {"mode": "none"}
    return document


def test_production_services_need_key_or_token_auth(pack):
    assert pack.analyze_stack([managed_cluster(), router_config_map()]) == []
    found = only(pack.analyze_stack([managed_cluster(), router_config_map(_with_open_service())]),
                 "production-service-auth")
    assert mandatory(found) == found and len(found) == 1
    assert "ConfigMap aks-serving/router-config (Pulumi resource router-config): service diabetes has auth mode " \
           "'none' on a production stack; every service and endpoint there needs key or token auth. Fix: set " \
           "authEnabled: true (keys) or tokenAuthEnabled: true" in found[0].message
    token = router_document()
    token["endpoints"]["sentiment-ab"]["auth"] = {"mode": "token", "token": {"issuer": "i", "audience": "a",
                                                                            "jwksUrl": "https://example/keys"}}
    assert pack.analyze_stack([managed_cluster(), router_config_map(token)]) == []
    open_endpoint = router_document()
    open_endpoint["endpoints"]["sentiment-ab"]["auth"] = {"mode": "none"}
    found = pack.analyze_stack([managed_cluster(), router_config_map(open_endpoint)])
    assert "endpoint sentiment-ab has auth mode 'none'" in mandatory(found)[0].message


def test_open_services_are_fine_on_dev_test(pack, start_pack):
    assert pack.analyze_stack([managed_cluster("aks-dev", "dev-test"), router_config_map(_with_open_service())]) == []
    found = pack.analyze_stack([router_config_map(_with_open_service())])  # no cluster in the stack
    assert mandatory(found) == [] and advisory(found, "production-service-auth")
    production = start_pack({"production-service-auth": {"clusterPurpose": "production"}})
    assert len(mandatory(production.analyze_stack([router_config_map(_with_open_service())]))) == 1


def _endpoint(**changes) -> dict:
    document = router_document()
    document["endpoints"]["sentiment-ab"].update(changes)
    return document


def _versions(*shares, roles=None):
    return {f"v{i}": {"service": f"sentiment-ab-v{i}", "trafficPercentile": share,
                      "role": (roles or {}).get(f"v{i}", "treatment")} for i, share in enumerate(shares, 1)}


def _services(count):
    document = router_document()
    return {f"sentiment-ab-v{i}": document["services"]["sentiment-ab-v1"] for i in range(1, count + 1)}


@pytest.mark.parametrize("endpoint, problem", [
    (_endpoint(versions=_versions(10, 10, 10, 10, 10, 10, 10)),
     "has 7 versions (v1, v2, v3, v4, v5, v6, v7); at most 6 are allowed"),
    (_endpoint(versions=_versions(80, 40)),
     "the versions' traffic shares add up to 120 %; they may add up to at most 100"),
    (_endpoint(versions=_versions(150)), "version v1 has trafficPercentile 150; each share is a number from 0 to 100"),
    (_endpoint(versions=_versions(-5)), "version v1 has trafficPercentile -5"),
    (_endpoint(defaultVersion="v9"), "defaultVersion 'v9' is not one of its versions (v1, v2)"),
    (_endpoint(versions=_versions(50, 50, roles={"v1": "control", "v2": "control"})),
     "2 versions are control versions (v1, v2); at most one may be"),
    (_endpoint(versions={}), "has no versions"),
])
def test_endpoint_traffic_rules(pack, endpoint, problem):
    endpoint["services"].update(_services(7))
    found = only(pack.analyze(router_config_map(endpoint)), "endpoint-traffic")
    assert mandatory(found) == found and len(found) == 1
    assert found[0].message.startswith("An endpoint has 1 to 6 versions")
    assert "ConfigMap aks-serving/router-config (Pulumi resource router-config): endpoint sentiment-ab" \
        in found[0].message
    assert problem in found[0].message
    assert "Fix: " in found[0].message


def test_endpoint_traffic_that_passes(pack, start_pack):
    six = _endpoint(versions=_versions(20, 10, 0, 0, 0, 0, roles={"v1": "control"}))
    six["services"].update(_services(6))
    assert pack.analyze(router_config_map(six)) == []
    no_default = _endpoint()
    del no_default["endpoints"]["sentiment-ab"]["defaultVersion"]
    assert pack.analyze(router_config_map(no_default)) == []
    stricter = start_pack({"endpoint-traffic": {"maxVersions": 2}})
    three = _endpoint(versions=_versions(10, 10, 10))
    three["services"].update(_services(3))
    assert "at most 2 are allowed" in stricter.analyze(router_config_map(three))[0].message


def test_a_version_must_run_as_a_defined_service(pack):
    document = router_document()
    del document["services"]["sentiment-ab-v2"]
    found = only(pack.analyze(router_config_map(document)), "endpoint-traffic")
    assert "version v2 runs as service 'sentiment-ab-v2', which the router config does not define" in found[0].message


@pytest.mark.parametrize("count, ok", [("1", True), ("1000", True), ("1001", False), ("many", False)])
def test_models_per_service(pack, count, ok):
    found = pack.analyze(deployment(models=count))
    if ok:
        assert found == []
        return
    found = only(found, "models-per-service")
    assert mandatory(found) == found
    if count == "1001":
        assert "Deployment aks-serving-models/diabetes (Pulumi resource diabetes-deployment) loads 1001 models; a " \
               "service may load at most 1000. Fix: split the models" in found[0].message
    else:
        assert "annotation aks-serving/model-count='many' is not a whole number" in found[0].message


def test_a_model_deployment_without_its_count_is_undecided(pack):
    found = pack.analyze(deployment(models=None))
    assert mandatory(found) == []
    assert "without the aks-serving/model-count annotation" in advisory(found, "models-per-service")[0].message
    assert pack.analyze(deployment("router", "router", models=None)) == []  # not a model

import pytest
from pydantic import ValidationError

from router.settings import MAX_BODY_BYTES_DEFAULT, RouterConfig, load_config

from router_testkit import EXAMPLE


def test_issue_example_is_accepted_unchanged():
    config = RouterConfig.model_validate(EXAMPLE)
    echo = config.services["echo"]
    assert echo.auth.mode == "key" and [str(p) for p in echo.auth.key_files] == ["/tmp/k/primary", "/tmp/k/secondary"]
    assert echo.backend.kind == "static" and len(echo.backend.urls) == 2
    assert echo.requests.max_concurrent_per_replica == 64
    assert echo.autoscale.enabled is False


def test_v1_defaults():
    config = RouterConfig.model_validate({"services": {"svc": {"auth": {"mode": "none"}, "backend": {
        "kind": "kubernetes", "namespace": "models", "service": "svc", "deployment": "svc"}}}})
    svc = config.services["svc"]
    assert (svc.requests.max_concurrent_per_replica, svc.requests.max_queue_wait_ms,
            svc.requests.scoring_timeout_ms, svc.requests.max_body_bytes) == (1, 500, 60000, MAX_BODY_BYTES_DEFAULT)
    a = svc.autoscale
    assert (a.enabled, a.min_replicas, a.max_replicas, a.target_utilization, a.refresh_seconds,
            a.stable_window_seconds) == (True, 1, 10, 70, 1, 60)


@pytest.mark.parametrize("path, value, message", [
    (("services", "echo", "requests", "maxConcurrentPerReplica"), 0, "greater than 0"),
    (("services", "echo", "requests", "maxQueueWaitMS"), 5, "Extra inputs are not permitted"),
    (("services", "echo", "autoscale", "enabled"), True, "static backend cannot scale"),
    (("services", "echo", "auth", "mode"), "basic", "mode"),
    (("services", "echo", "backend", "kind"), "docker", "kind"),
    (("unknownTopLevel",), 1, "Extra inputs"),
])
def test_invalid_configs_name_the_problem(path, value, message):
    import copy
    data = copy.deepcopy(EXAMPLE)
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(ValidationError, match=message):
        RouterConfig.model_validate(data)


def test_min_above_max_refused():
    data = {"services": {"svc": {"auth": {"mode": "none"},
                                 "backend": {"kind": "kubernetes", "namespace": "m", "service": "s",
                                             "deployment": "d"},
                                 "autoscale": {"minReplicas": 5, "maxReplicas": 2}}}}
    with pytest.raises(ValidationError, match="minReplicas must be <= autoscale.maxReplicas"):
        RouterConfig.model_validate(data)


def _endpoint(versions, **extra):
    services = {name: {"auth": {"mode": "none"}, "backend": {"kind": "static", "urls": ["http://127.0.0.1:1"]},
                       "autoscale": {"enabled": False}} for name in ("svc-a", "svc-b", "svc-c")}
    return {"services": services, "endpoints": {"ep1": {"auth": {"mode": "none"}, "versions": versions, **extra}}}


def test_default_version_gets_its_share_plus_the_unassigned_rest():
    # v1's documented example: 20 % + 10 % set, default at 20 % -> it gets 90 %.
    config = RouterConfig.model_validate(_endpoint({
        "version-a": {"service": "svc-a", "trafficPercentile": 20},
        "version-b": {"service": "svc-b", "trafficPercentile": 10, "role": "control"}}))
    assert config.endpoints["ep1"].traffic_shares() == {"version-a": 90, "version-b": 10}
    config = RouterConfig.model_validate(_endpoint({
        "version-a": {"service": "svc-a", "trafficPercentile": 20},
        "version-b": {"service": "svc-b", "trafficPercentile": 40}}, defaultVersion="version-b"))
    assert config.endpoints["ep1"].traffic_shares() == {"version-a": 20, "version-b": 80}


@pytest.mark.parametrize("versions, extra, message", [
    ({"version-a": {"service": "svc-a", "trafficPercentile": 60},
      "version-b": {"service": "svc-b", "trafficPercentile": 50}}, {}, "more than 100"),
    ({"version-a": {"service": "nope"}}, {}, "not a key of services"),
    ({"version-a": {"service": "svc-a"}}, {"defaultVersion": "version-z"}, "not one of the versions"),
    ({"version-a": {"service": "svc-a", "role": "control"},
      "version-b": {"service": "svc-b", "role": "control"}}, {}, "at most one version"),
    ({f"version-{i}": {"service": "svc-a"} for i in range(7)}, {}, "at most 6"),
    ({"Version_A": {"service": "svc-a"}}, {}, "must match"),
])
def test_endpoint_rules(versions, extra, message):
    with pytest.raises(ValidationError, match=message):
        RouterConfig.model_validate(_endpoint(versions, **extra))


def test_auth_must_be_stated():
    with pytest.raises(ValidationError, match="auth"):
        RouterConfig.model_validate({"services": {"svc": {
            "backend": {"kind": "static", "urls": ["http://127.0.0.1:1"]}, "autoscale": {"enabled": False}}}})
    with pytest.raises(ValidationError, match="needs keyFiles or keySecretLabels"):
        RouterConfig.model_validate({"services": {"svc": {"auth": {"mode": "key"},
            "backend": {"kind": "static", "urls": ["http://127.0.0.1:1"]}, "autoscale": {"enabled": False}}}})


def test_yaml_and_json_files_load(tmp_path):
    import json
    import yaml
    (tmp_path / "c.json").write_text(json.dumps(EXAMPLE))
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(EXAMPLE))
    assert load_config(tmp_path / "c.json") == load_config(tmp_path / "c.yaml")


def test_short_version_names_are_accepted():
    # The 3-32 rule applies to the service a version runs as (e.g. churn-v1), not to "v1" itself.
    config = RouterConfig.model_validate(_endpoint({"v1": {"service": "svc-a"}}))
    assert list(config.endpoints["ep1"].versions) == ["v1"]

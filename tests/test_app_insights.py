"""enableAppInsights on the cluster: the config rules, the router's per-service flag, and under Pulumi's mocks the
Secret that carries the workspace's connection string and the env that reads it, for the services that ask
only. (Azure and the Kubernetes API server cannot run here: tests/pulumi_mocks.py answers for them.)"""
import json
import sys
from pathlib import Path

import pytest

from components.app_insights import instrumentation_key
from components.config import ConfigError, parse_stack_config
from components.router import router_config
from local.deployment import LocalDeployment
from pulumi_mocks import run_program, stack_file_config
from tools.manifests import write_manifests
from tools.scan import scan
from tools.validate import DEFAULT_KUBERNETES_VERSION, validate_dir

SECRET = "kubernetes:core/v1:Secret"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
SECRET_SIG = "4dabf18193072939515e22adb298388d"  # the wire form of a Pulumi secret
MOCK_CONNECTION_STRING = "InstrumentationKey=00000000-0000-0000-0000-000000000000"  # AzureStandIn's


def dev_config(service: dict | None = None, version: dict | None = None, workspace: dict | None = None) -> dict:
    """The dev stack, with diabetes' and endpoint version sentiment-ab/v2's settings changed."""
    config = stack_file_config("dev")
    config["services"]["diabetes"].update(service or {})
    config["endpoints"]["sentiment-ab"]["versions"]["v2"].update(version or {})
    config["workspace"].update(workspace or {})
    return config


# ---------------------------------------------------------------- config


def test_off_by_default_and_v1s_spellings_are_read():
    assert parse_stack_config(dev_config()).services["diabetes"].enable_app_insights is False
    for spelling in ("enableAppInsights", "appInsightsEnabled", "enable_app_insights"):
        assert parse_stack_config(dev_config({spelling: True})).services["diabetes"].enable_app_insights is True


@pytest.mark.parametrize("where, key", [("service", "services.diabetes.enableAppInsights"),
                                        ("version", "endpoints.sentiment-ab.versions.v2.enableAppInsights")])
def test_without_the_workspaces_application_insights_it_is_an_error_naming_both_keys(where, key):
    with pytest.raises(ConfigError) as err:
        parse_stack_config(dev_config(**{where: {"enableAppInsights": True}},
                                      workspace={"applicationInsights": False}))
    (problem,) = err.value.problems
    assert problem.startswith(key + ":") and "workspace.applicationInsights" in problem


def test_the_router_config_flags_only_the_services_that_ask():
    cfg = parse_stack_config(dev_config({"enableAppInsights": True}, {"appInsightsEnabled": True}))
    services = router_config(cfg, "aks-serving")["services"]
    assert {name for name, s in services.items() if s.get("appInsights")} == {"diabetes", "sentiment-ab-v2"}
    # A stack without it renders no flag at all: its router config (and so its pods) stay as they were.
    plain = router_config(parse_stack_config(dev_config()), "aks-serving")["services"]
    assert not any("appInsights" in s for s in plain.values())


def test_instrumentation_key_is_read_from_a_connection_string():
    cs = ("InstrumentationKey=1a2b3c4d-0000-4000-8000-00000000abcd;IngestionEndpoint=https://westeurope-5.in."
          "applicationinsights.azure.com/;LiveEndpoint=https://westeurope.livediagnostics.monitor.azure.com/")
    assert instrumentation_key(cs) == "1a2b3c4d-0000-4000-8000-00000000abcd"
    assert instrumentation_key("instrumentationkey=abc") == "abc" and instrumentation_key(None) is None


# ---------------------------------------------------------------- the cluster (mocks)


@pytest.fixture(scope="module")
def enabled():
    return run_program(dev_config({"enableAppInsights": True}, {"enableAppInsights": True}), stack="dev")


def containers(run) -> dict[str, dict]:
    return {r.inputs["metadata"]["name"]: r.inputs["spec"]["template"]["spec"]["containers"][0]
            for r in run.of_type(DEPLOYMENT)}


def from_secrets(container: dict) -> dict[str, tuple[str, str]]:
    return {e["name"]: (e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"])
            for e in container.get("env", []) if "secretKeyRef" in e.get("valueFrom", {})}


def test_the_connection_string_is_a_secret_beside_the_router_and_the_models(enabled):
    secrets = {r.inputs["metadata"]["namespace"]: r for r in enabled.of_type(SECRET)
               if r.inputs["metadata"]["name"] == "app-insights"}
    assert set(secrets) == {"aks-serving", "aks-serving-models"}
    for secret in secrets.values():
        data = secret.inputs["stringData"]
        assert data[SECRET_SIG]  # a Pulumi secret in the state, and what the provider reads back too
        assert data["value"] == {"connection-string": MOCK_CONNECTION_STRING,
                                 "instrumentation-key": "00000000-0000-0000-0000-000000000000"}
        assert secret.secret_outputs == ["data", "stringData"]


def test_router_and_the_enabled_models_read_it_from_the_secret_and_no_one_else(enabled):
    pods = containers(enabled)
    assert from_secrets(pods["router"]) == {
        "APPLICATIONINSIGHTS_CONNECTION_STRING": ("app-insights", "connection-string")}
    model = {"AML_APP_INSIGHTS_KEY": ("app-insights", "instrumentation-key"),
             "APPLICATIONINSIGHTS_CONNECTION_STRING": ("app-insights", "connection-string")}
    for name in ("diabetes", "sentiment-ab-v2"):
        assert from_secrets(pods[name]) == model
        assert {e["name"]: e.get("value") for e in pods[name]["env"]}["AML_APP_INSIGHTS_ENABLED"] == "true"
    for name in ("sentiment", "sentiment-ab-v1"):
        assert not any(e["name"].startswith(("AML_APP_INSIGHTS", "APPLICATIONINSIGHTS")) for e in pods[name]["env"])


def test_the_connection_string_is_in_no_configmap_and_no_plain_output(enabled):
    (component,) = enabled.of_type("azure-native:applicationinsights:Component")
    assert {"connectionString", "instrumentationKey"} <= set(component.secret_outputs)  # secret in the state
    for config_map in enabled.of_type("kubernetes:core/v1:ConfigMap"):
        assert "InstrumentationKey" not in json.dumps(config_map.inputs)
    plain = {name: value for name, value in enabled.exports.items() if name not in enabled.secret_exports}
    assert "InstrumentationKey" not in json.dumps(plain, default=str)
    flags = json.loads(next(r.inputs for r in enabled.of_type("kubernetes:core/v1:ConfigMap")
                            if r.inputs["metadata"]["name"] == "router-config")["data"]["config.json"])
    assert flags["services"]["diabetes"]["appInsights"] is True


def test_a_stack_without_it_has_no_secret_and_no_env():
    run = run_program(dev_config(), stack="dev")
    assert not [r for r in run.of_type(SECRET) if r.inputs["metadata"]["name"] == "app-insights"]
    assert not any(from_secrets(c).keys() & {"APPLICATIONINSIGHTS_CONNECTION_STRING"}
                   for c in containers(run).values())


def test_make_run_gives_the_flag_to_the_replicas_of_the_services_that_ask_and_no_key(tmp_path):
    """The key and connection string come from make run's environment at start (router/backends/local.py)."""
    cfg = parse_stack_config(dev_config({"enableAppInsights": True}))
    local = LocalDeployment("dev", state_dir=tmp_path, cfg=cfg,
                            pythons={name: Path(sys.executable) for name in cfg.environments})
    backend = local._backend()
    envs = {name: backend(name, spec)["env"] for name, _, spec in cfg.deployments()}
    assert {name for name, env in envs.items() if env.get("AML_APP_INSIGHTS_ENABLED") == "true"} == {"diabetes"}
    assert not any(env.keys() & {"AML_APP_INSIGHTS_KEY", "APPLICATIONINSIGHTS_CONNECTION_STRING"}
                   for env in envs.values())


def test_the_objects_pass_kubernetes_validate_and_checkov_and_inline_no_secret(enabled, tmp_path):
    pods = [r.inputs["spec"]["template"]["spec"] for r in enabled.of_type(DEPLOYMENT)]
    read = {ref for pod in pods for c in pod["containers"] + pod.get("initContainers", [])
            for ref in from_secrets(c).values()}
    assert {secret for secret, _ in read} == {"app-insights"}  # what the checkov skip (CKV_K8S_35) relies on
    written = write_manifests(enabled, tmp_path)
    assert written.misplaced_secrets == []  # the connection string reaches pods only through the Secret
    report = validate_dir(tmp_path / "k8s", DEFAULT_KUBERNETES_VERSION)
    assert report.errors == {}
    result = scan(tmp_path / "k8s")
    assert result.parsing_errors == [] and [str(f) for f in result.failures] == []

"""The RouterConfig rendered from the stack config: one conversion for the cluster and the local run."""
import pytest

from components.config import ConfigError, load_stack_file
from components.router_config import render_router_config
from router.settings import RouterConfig


def render(cfg):
    backend = lambda name, spec: {"kind": "kubernetes", "namespace": "models", "service": name, "deployment": name}
    auth = lambda name, settings: ({"mode": "key", "keyFiles": [f"/keys/{name}/primary", f"/keys/{name}/secondary"]}
                                   if settings.auth_mode == "key" else {"mode": "none"})
    return render_router_config(cfg, backend, auth)


def test_dev_stack_renders_a_valid_router_config():
    document = render(load_stack_file("Pulumi.dev.yaml"))
    config = RouterConfig.model_validate(document)
    assert set(config.services) == {"diabetes", "sentiment", "sentiment-ab-v1", "sentiment-ab-v2"}
    endpoint = config.endpoints["sentiment-ab"]
    assert endpoint.traffic_shares() == {"v1": 80, "v2": 20}
    assert endpoint.versions["v1"].role == "control" and endpoint.versions["v2"].service == "sentiment-ab-v2"


def test_v1_defaults_reach_the_router():
    diabetes = render(load_stack_file("Pulumi.dev.yaml"))["services"]["diabetes"]
    assert diabetes["requests"] == {"maxConcurrentPerReplica": 1, "maxQueueWaitMs": 500, "scoringTimeoutMs": 60000,
                                    "maxBodyBytes": 100 * 1024 * 1024}
    assert diabetes["autoscale"] == {"enabled": True, "minReplicas": 1, "maxReplicas": 3, "targetUtilization": 70,
                                     "refreshSeconds": 1, "stableWindowSeconds": 60}


def test_endpoint_versions_share_the_endpoints_auth():
    document = render(load_stack_file("Pulumi.dev.yaml"))
    assert document["services"]["sentiment-ab-v2"]["auth"] == document["endpoints"]["sentiment-ab"]["auth"]
    assert document["endpoints"]["sentiment-ab"]["auth"]["keyFiles"][0] == "/keys/sentiment-ab/primary"


def test_a_fixed_replica_count_is_kept_by_the_router(tmp_path):
    stack = tmp_path / "Pulumi.fixed.yaml"
    stack.write_text("""
config:
  aks-serving:workspace: {name: mlw, location: westeurope}
  aks-serving:cluster: {name: aks-dev, purpose: dev-test, vmSize: Standard_D2s_v3, nodeCount: 1}
  aks-serving:environments: {e: {condaFile: models/sentiment/conda.yml}}
  aks-serving:services: {fixed: {environment: e, entryScript: models/sentiment/score.py, numReplicas: 3}}
""")
    autoscale = render(load_stack_file(stack))["services"]["fixed"]["autoscale"]
    assert (autoscale["minReplicas"], autoscale["maxReplicas"]) == (3, 3)


def test_router_limits_set_in_the_stack_reach_the_router_and_bad_ones_name_the_key(tmp_path):
    stack = tmp_path / "Pulumi.limits.yaml"
    text = """
config:
  aks-serving:workspace: {name: mlw, location: westeurope}
  aks-serving:cluster: {name: aks-dev, purpose: dev-test, vmSize: Standard_D2s_v3, nodeCount: 1}
  aks-serving:router: {limits: {bodyTimeoutSeconds: 10, sendTimeoutSeconds: LIMIT}}
  aks-serving:environments: {e: {condaFile: models/sentiment/conda.yml}}
  aks-serving:services: {svc: {environment: e, entryScript: models/sentiment/score.py}}
"""
    stack.write_text(text.replace("LIMIT", "5"))
    document = render(load_stack_file(stack))
    assert document["router"]["limits"] == {"bodyTimeoutSeconds": 10, "sendTimeoutSeconds": 5}  # only what was set
    assert RouterConfig.model_validate(document).router.limits.keep_alive_seconds == 75
    assert "limits" not in render(load_stack_file("Pulumi.dev.yaml"))["router"]  # defaults stay the router's
    stack.write_text(text.replace("LIMIT", "0"))
    with pytest.raises(ConfigError) as error:
        load_stack_file(stack)
    assert "router.limits.sendTimeoutSeconds" in str(error.value)


# ---------------------------------------------------------------- token auth from an OIDC issuer

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
OIDC_STACK = f"""
config:
  aks-serving:workspace: {{name: mlw, location: westeurope}}
  aks-serving:cluster: {{name: aks-dev, purpose: dev-test, vmSize: Standard_D2s_v3, nodeCount: 1}}
  aks-serving:environments: {{e: {{condaFile: models/sentiment/conda.yml}}}}
  aks-serving:services:
    entra:
      environment: e
      entryScript: models/sentiment/score.py
      authEnabled: false
      tokenAuthEnabled: true
      tokenAuth: {{tenantId: {TENANT}, audience: ["api://scoring", "11111111-2222-3333-4444-555555555555"]}}
    own: {{environment: e, entryScript: models/sentiment/score.py, authEnabled: false, tokenAuthEnabled: true}}
  aks-serving:endpoints:
    ab-test:
      authEnabled: false
      tokenAuthEnabled: true
      tokenAuth: {{issuer: "https://sts.windows.net/{TENANT}/", audience: "api://ab-test"}}
      versions: {{v1: {{environment: e, entryScript: models/sentiment/score.py}}}}
"""
ENTRA_V2 = {"mode": "token", "token": {
    "issuer": f"https://login.microsoftonline.com/{TENANT}/v2.0",
    "discoveryUrl": f"https://login.microsoftonline.com/{TENANT}/v2.0/.well-known/openid-configuration",
    "audience": ["api://scoring", "11111111-2222-3333-4444-555555555555"], "algorithms": ["RS256"]}}
ENTRA_V1 = {"mode": "token", "token": {
    "issuer": f"https://sts.windows.net/{TENANT}/",
    "discoveryUrl": f"https://sts.windows.net/{TENANT}/.well-known/openid-configuration",
    "audience": "api://ab-test", "algorithms": ["RS256"]}}


@pytest.fixture
def oidc_stack(tmp_path):
    stack = tmp_path / "Pulumi.oidc.yaml"
    stack.write_text(OIDC_STACK)
    return stack


def test_the_cluster_router_trusts_the_named_issuer_and_only_its_keys(oidc_stack):
    from components.router import router_config, uses_token_auth
    cfg = load_stack_file(oidc_stack)
    document = router_config(cfg, "aks-serving")
    assert document["services"]["entra"]["auth"] == ENTRA_V2  # no publicKeyFiles: the stack key is not trusted
    assert document["endpoints"]["ab-test"]["auth"] == ENTRA_V1 == document["services"]["ab-test-v1"]["auth"]
    assert document["services"]["own"]["auth"]["token"] == {"issuer": "aks-serving", "audience": "own",
                                                           "publicKeyFiles": ["/etc/router/token/public.pem"]}
    RouterConfig.model_validate(document)
    assert uses_token_auth(cfg)  # `own` still needs the stack's signing key ...
    only_oidc = oidc_stack.read_text().replace(
        "    own: {environment: e, entryScript: models/sentiment/score.py, authEnabled: false, tokenAuthEnabled: true}\n",
        "")
    oidc_stack.write_text(only_oidc)
    assert not uses_token_auth(load_stack_file(oidc_stack))  # ... a stack of issuer-trusting services does not


def test_make_run_trusts_the_same_issuer_as_the_cluster(oidc_stack, tmp_path):
    from local.deployment import LocalDeployment
    local = LocalDeployment("oidc", stack_file=oidc_stack, state_dir=tmp_path / "state")
    cfg = local.load()
    assert local._auth("entra", cfg.services["entra"]) == ENTRA_V2
    assert local._auth("ab-test", cfg.endpoints["ab-test"]) == ENTRA_V1
    assert "signingKeyFile" in local._auth("own", cfg.services["own"])["token"]  # the self-signed default stays
    entry = local._entry("entra", cfg.services["entra"], "uri", "swagger")
    assert entry["tokenIssuer"] == ENTRA_V2["token"]["issuer"] and "tokenCommand" not in entry

"""A stack whose token-auth service trusts Microsoft Entra ID, under Pulumi's mocks (Azure answers through
`AzureStandIn`): the router is configured for the tenant, the stack makes no signing key of its own, and
the router pods can reach the issuer (no egress policy around them)."""
import json

import pytest

from pulumi_mocks import run_program, stack_file_config
from router.settings import RouterConfig

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
ISSUER = f"https://login.microsoftonline.com/{TENANT}/v2.0"


@pytest.fixture(scope="module")
def entra():
    config = stack_file_config("dev")
    config["services"]["sentiment"]["tokenAuth"] = {"tenantId": TENANT, "audience": "api://sentiment"}
    return run_program(config, stack="dev")


def test_the_router_is_configured_for_the_tenant_and_no_stack_key_is_made(entra):
    config_map = next(r.inputs for r in entra.of_type("kubernetes:core/v1:ConfigMap")
                      if r.inputs["metadata"]["name"] == "router-config")
    token = RouterConfig.model_validate(json.loads(config_map["data"]["config.json"])).services["sentiment"].auth.token
    assert (token.issuer, token.audience) == (ISSUER, "api://sentiment")
    assert token.discovery_url == f"{ISSUER}/.well-known/openid-configuration"
    assert token.public_key_files == [] and token.signing_key_file is None
    assert entra.of_type("aks-serving:index:TokenSigningKey") == []
    assert "tokenSigningKey" not in entra.exports
    names = {r.inputs["metadata"]["name"] for r in entra.of_type("kubernetes:core/v1:ConfigMap")}
    assert "router-token-keys" not in names
    assert entra.exports["services"]["sentiment"]["auth"] == "token"
    # The outputs say whose tokens the service takes, as a client must ask Entra for them.
    assert entra.exports["services"]["sentiment"]["token"] == {"issuer": ISSUER, "audiences": ["api://sentiment"]}


def test_the_router_pods_may_reach_the_issuer(entra):
    # The router fetches the tenant's keys over HTTPS: no NetworkPolicy in its namespace limits egress.
    policies = [r.inputs for r in entra.of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy")
                if r.inputs["metadata"]["namespace"] == "aks-serving"]
    assert policies and all("Egress" not in p["spec"]["policyTypes"] for p in policies)

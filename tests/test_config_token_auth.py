"""`tokenAuth:` (an OIDC issuer a token-auth service trusts): Entra's two issuer forms, the rules, and errors
that name the key."""
import pytest

from components.config import ConfigError, parse_stack_config

WORKSPACE = {"name": "mlw", "location": "westeurope"}
ENVIRONMENTS = {"sklearn": {"condaFile": "models/diabetes/conda.yml"}}
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"


def service(**fields):
    return {"environment": "sklearn", "entryScript": "models/diabetes/score.py", "authEnabled": False,
            "tokenAuthEnabled": True, **fields}


def parse(**sections):
    return parse_stack_config({"workspace": WORKSPACE, "cluster": {"name": "aks-prod"},
                               "environments": ENVIRONMENTS, **sections})


def token_auth(**fields):
    return parse(services={"echo": service(tokenAuth=fields)}).services["echo"].token_auth


def problems(**fields) -> list[str]:
    with pytest.raises(ConfigError) as err:
        parse(services={"echo": service(tokenAuth=fields)})
    return err.value.problems


def test_tenant_id_stands_for_entras_v2_issuer():
    token = token_auth(tenantId=TENANT, audience="api://scoring")
    assert token.issuer_url == f"https://login.microsoftonline.com/{TENANT}/v2.0"
    assert token.discovery_url == f"https://login.microsoftonline.com/{TENANT}/v2.0/.well-known/openid-configuration"
    assert token.audiences == ["api://scoring"] and token.algorithms == ["RS256"] and token.is_entra


def test_entras_v1_issuer_is_kept_as_written_and_discovered_without_its_slash():
    token = token_auth(issuer=f"https://sts.windows.net/{TENANT}/", audience=["api://scoring", TENANT])
    assert token.issuer_url == f"https://sts.windows.net/{TENANT}/"  # tokens' iss has the slash
    assert token.discovery_url == f"https://sts.windows.net/{TENANT}/.well-known/openid-configuration"
    assert token.audiences == ["api://scoring", TENANT]


def test_any_oidc_issuer_is_accepted():
    token = token_auth(issuer="https://keycloak.example.com:8443/realms/ml", audience="ml-api",
                       algorithms=["RS256", "ES256"])
    assert token.discovery_url == "https://keycloak.example.com:8443/realms/ml/.well-known/openid-configuration"
    assert not token.is_entra


def test_without_token_auth_block_the_stack_key_signs():
    cfg = parse(services={"echo": service(), "entra": service(tokenAuth={"tenantId": TENANT, "audience": "a"})})
    assert cfg.services["echo"].uses_stack_tokens and not cfg.services["entra"].uses_stack_tokens


def test_an_endpoint_can_trust_an_issuer_too():
    version = {"environment": "sklearn", "entryScript": "models/diabetes/score.py"}
    endpoint = {"authEnabled": False, "tokenAuthEnabled": True, "versions": {"v1": version},
                "tokenAuth": {"tenantId": TENANT, "audience": "api://ab"}}
    assert parse(endpoints={"ab-test": endpoint}).endpoints["ab-test"].token_auth.audiences == ["api://ab"]
    endpoint["tokenAuth"] = {"tenantId": "common", "audience": "api://ab"}
    with pytest.raises(ConfigError) as err:
        parse(endpoints={"ab-test": endpoint})
    assert err.value.problems[0].startswith("endpoints.ab-test.tokenAuth.tenantId: 'common' is a multi-tenant")


@pytest.mark.parametrize("fields, problem", [
    ({"issuer": "http://idp.example/realms/ml", "audience": "a"},
     "services.echo.tokenAuth.issuer: 'http://idp.example/realms/ml' must be an https:// URL without query, "
     "fragment or spaces (as the identity provider writes it in tokens' iss)"),
    ({"issuer": f"https://sts.windows.net/{TENANT}/ ", "audience": "a"},
     f"services.echo.tokenAuth.issuer: 'https://sts.windows.net/{TENANT}/ ' has leading or trailing whitespace; "
     "tokens' iss is compared exactly"),
    ({"issuer": "https://idp.example/realms/ml?x=1", "audience": "a"},
     "services.echo.tokenAuth.issuer: 'https://idp.example/realms/ml?x=1' must be an https:// URL without query, "
     "fragment or spaces (as the identity provider writes it in tokens' iss)"),
    ({"issuer": "https://login.microsoftonline.com/{tenantid}/v2.0", "audience": "a"},
     "services.echo.tokenAuth.issuer: 'https://login.microsoftonline.com/{tenantid}/v2.0' is a multi-tenant "
     "template, not an issuer; name one tenant (single tenant only)"),
    ({"issuer": "https://login.microsoftonline.com/common/v2.0", "audience": "a"},
     "services.echo.tokenAuth.issuer: 'https://login.microsoftonline.com/common/v2.0' is a multi-tenant authority, "
     "whose tokens carry each caller's own tenant as issuer; name one tenant (single tenant only)"),
    ({"tenantId": "organizations", "audience": "a"},
     "services.echo.tokenAuth.tenantId: 'organizations' is a multi-tenant authority, whose tokens carry each "
     "caller's own tenant as issuer; give one tenant's ID (single tenant only)"),
    ({"tenantId": "contoso.onmicrosoft.com", "audience": "a"},
     "services.echo.tokenAuth.tenantId: 'contoso.onmicrosoft.com' must be the tenant's ID, a GUID (tokens name the "
     "tenant by ID, never by domain)"),
    ({"tenantId": TENANT, "issuer": f"https://sts.windows.net/{TENANT}/", "audience": "a"},
     "services.echo.tokenAuth.issuer: set issuer, or tenantId for Microsoft Entra ID (one of them, not both)"),
    ({"audience": "a"},
     "services.echo.tokenAuth.issuer: set issuer, or tenantId for Microsoft Entra ID (one of them, not both)"),
    ({"tenantId": TENANT}, "services.echo.tokenAuth.audience: required, not set"),
    ({"tenantId": TENANT, "audience": []},
     "services.echo.tokenAuth.audience: at least one (the API's application ID URI or client ID)"),
    ({"tenantId": TENANT, "audience": ["api://a", " api://b"]},
     "services.echo.tokenAuth.audience: ' api://b' must be non-empty, without leading or trailing whitespace"),
    ({"tenantId": TENANT, "audience": ["api://a", "api://a"]}, "services.echo.tokenAuth.audience: listed twice"),
    ({"tenantId": TENANT, "audience": "a", "algorithms": ["HS256"]},
     "services.echo.tokenAuth.algorithms[0]: Input should be 'RS256', 'RS384', 'RS512', 'ES256', 'ES384', 'PS256' "
     "or 'EdDSA'"),
    ({"tenantId": TENANT, "audience": "a", "issuers": "x"},
     "services.echo.tokenAuth.issuers: unknown key; did you mean issuer?"),
])
def test_bad_token_auth_names_the_key_and_the_rule(fields, problem):
    assert problems(**fields) == [problem]


@pytest.mark.parametrize("auth", [{}, {"authEnabled": True}, {"authEnabled": False}])
def test_token_auth_block_needs_token_auth_enabled(auth):
    spec = {"environment": "sklearn", "entryScript": "models/diabetes/score.py", **auth,
            "tokenAuth": {"tenantId": TENANT, "audience": "a"}}
    with pytest.raises(ConfigError) as err:
        parse(services={"echo": spec})
    assert err.value.problems == ["services.echo.tokenAuth: applies to token auth only; set tokenAuthEnabled: true "
                                  "and authEnabled: false"]

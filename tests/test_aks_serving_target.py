"""How `python -m aks_serving` resolves the name a user typed, on the RouterConfig both deployers render."""
import pytest

from aks_serving.errors import CommandError
from aks_serving.target import auth_owner, deployment_service, owners_with_auth
from components.config import parse_stack_config
from components.router import router_config
from local_stack import dev_config

CONFIG = router_config(parse_stack_config(dev_config()), "router-ns")


def test_a_service_an_endpoint_version_and_a_versions_own_name():
    assert deployment_service(CONFIG, "diabetes", None) == "diabetes"
    assert deployment_service(CONFIG, "sentiment-ab", "v2") == "sentiment-ab-v2"
    assert deployment_service(CONFIG, "sentiment-ab-v1", None) == "sentiment-ab-v1"


@pytest.mark.parametrize("name, version, message", [
    ("sentiment-ab", None, "sentiment-ab is an endpoint: pick a version with --version (v1 (default), v2)"),
    ("sentiment-ab", "v3", "sentiment-ab: no version v3; its versions are v1 (default), v2"),
    ("diabetes", "v1", "diabetes: --version is for endpoints, and diabetes is not one "
                       "(services: diabetes, sentiment; endpoints: sentiment-ab)"),
    ("diabetis", None, "diabetis: no such service or endpoint (services: diabetes, sentiment; endpoints: sentiment-ab)"),
])
def test_a_name_that_does_not_fit_says_what_exists(name, version, message):
    with pytest.raises(CommandError) as err:
        deployment_service(CONFIG, name, version)
    assert str(err.value) == message and err.value.code == 2


def test_keys_and_tokens_belong_to_what_has_a_scoring_uri():
    assert auth_owner(CONFIG, "sentiment-ab")[0] == "endpoints"
    assert auth_owner(CONFIG, "diabetes") == ("services", CONFIG["services"]["diabetes"]["auth"])
    with pytest.raises(CommandError):
        auth_owner(CONFIG, "sentiment-ab-v1")  # a version shares its endpoint's keys
    assert owners_with_auth(CONFIG, "key") == ["diabetes", "sentiment-ab"]
    assert owners_with_auth(CONFIG, "token") == ["sentiment"]

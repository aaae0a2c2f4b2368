import pytest

from policies.rules import naming

CLUSTER_RULE = ("must be 3-24 characters of letters, digits and hyphens, "
                "start with a letter and end with a letter or digit")


@pytest.mark.parametrize("name", ["abc", "a" * 24, "Aks-Prod-01", "a-1"])
def test_cluster_name_ok(name):
    assert naming.check_cluster_name(name) is None


@pytest.mark.parametrize("name", ["ab", "a" * 25, "1aks", "aks-", "-aks", "aks_prod", "aks prod", "aks\n", "", None])
def test_cluster_name_rejected(name):
    assert naming.check_cluster_name(name) == CLUSTER_RULE


@pytest.mark.parametrize("name", ["amlcompute", "local", "ContainerInstance"])
def test_cluster_name_reserved(name):
    assert "reserve" in naming.check_cluster_name(name)


@pytest.mark.parametrize("name", ["abc", "my-service-2", "a" * 32])
def test_service_name_ok(name):
    assert naming.check_service_name(name) is None


@pytest.mark.parametrize("name", ["ab", "a" * 33, "1abc", "abc-", "Abc", "ab_c", "ab.c", "-abc"])
def test_service_name_rejected(name):
    assert naming.check_service_name(name).startswith("must be 3-32 characters")


@pytest.mark.parametrize("name", ["v1", "v", "blue", "a" * 40])
def test_version_name_ok(name):
    """A version's own name has no length rule; the service it runs as (<endpoint>-<version>) has."""
    assert naming.check_version_name(name) is None


@pytest.mark.parametrize("name", ["V1", "1v", "v1-", "v_1", "", None])
def test_version_name_rejected(name):
    assert naming.check_version_name(name).startswith("must be lowercase letters, digits and hyphens")


def test_dns1123_label():
    assert naming.check_dns1123_label("a") is None
    assert naming.check_dns1123_label("a" * 63) is None
    assert naming.check_dns1123_label("0abc") is None
    for bad in ["a" * 64, "abc-", "Abc", "a.b", ""]:
        assert naming.check_dns1123_label(bad) is not None, bad


def test_dns1123_subdomain():
    assert naming.check_dns1123_subdomain("a.b-c.d") is None
    assert naming.check_dns1123_subdomain(".".join(["a" * 63] * 4)[:253].rstrip(".")) is None
    for bad in ["a" * 254, "a..b", "a.", ".a", "a.-b", "A.b"]:
        assert naming.check_dns1123_subdomain(bad) is not None, bad


def test_namespace_follows_azure_ml_v1():
    assert naming.check_namespace("a") is None
    assert naming.check_namespace("team-a1") is None
    assert naming.check_namespace("a" * 63) is None
    for bad in ["a" * 64, "-a", "a-", "Team", "a_b", ""]:
        assert naming.check_namespace(bad) is not None, bad


def test_registry_name():
    assert naming.check_registry_name("abcde") is None
    assert naming.check_registry_name("A" * 50) is None
    for bad in ["abcd", "a" * 51, "my-registry", "my_registry"]:
        assert naming.check_registry_name(bad) == "must be 5-50 letters and digits", bad


def test_storage_account_name():
    assert naming.check_storage_account_name("abc") is None
    assert naming.check_storage_account_name("a1" * 12) is None
    for bad in ["ab", "a" * 25, "MyStorage", "my-storage"]:
        assert naming.check_storage_account_name(bad) == "must be 3-24 lowercase letters and digits", bad


def test_node_pool_name():
    assert naming.check_node_pool_name("a") is None
    assert naming.check_node_pool_name("gpupool12345") is None  # 12
    for bad in ["gpupool123456", "1pool", "gpu-pool", "GpuPool", ""]:
        assert naming.check_node_pool_name(bad) is not None, bad


def test_patterns_reject_a_trailing_newline_with_plain_match():
    assert naming.SERVICE_NAME_PATTERN.match("abc\n") is None
    assert naming.CLUSTER_NAME_PATTERN.match("abc") is not None


GOOD_ID = ("/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/ml-rg"
           "/providers/Microsoft.ContainerService/managedClusters/aks-prod")


def test_aks_resource_id_ok_and_parsed():
    assert naming.check_resource_id_for_aks(GOOD_ID) is None
    assert naming.check_resource_id_for_aks(GOOD_ID.lower()) is None  # ARM is case-insensitive here
    assert naming.parse_aks_resource_id(GOOD_ID) == (
        "00000000-0000-0000-0000-000000000000", "ml-rg", "aks-prod")


@pytest.mark.parametrize("resource_id", [
    GOOD_ID.rsplit("/", 1)[0],                                          # 8 parts: no cluster name
    GOOD_ID + "/agentPools/nodepool1",                                  # a child resource
    GOOD_ID.replace("Microsoft.ContainerService", "Microsoft.Compute"),  # wrong provider
    GOOD_ID.replace("managedClusters", "virtualMachines"),
    GOOD_ID.replace("resourceGroups", "resourcegroup"),
    GOOD_ID.replace("/ml-rg/", "//"),                                   # empty part
    GOOD_ID.lstrip("/"),                                                # no leading slash
    GOOD_ID + "/",
    "aks-prod",
    "",
    None,
])
def test_aks_resource_id_rejected(resource_id):
    assert naming.check_resource_id_for_aks(resource_id) == naming.AKS_RESOURCE_ID_RULE
    with pytest.raises(ValueError, match="must be an AKS resource ID"):
        naming.parse_aks_resource_id(resource_id)

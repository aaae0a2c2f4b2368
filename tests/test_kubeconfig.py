"""The kubelogin rewrite that lets `pulumi up` reach an Entra ID cluster with no person present."""
import pytest
import yaml

from components.kubeconfig import kubelogin_args, rewrite_kubeconfig
from pulumi_mocks import EXEC_KUBECONFIG, SERVER_ID, TENANT

AKS_ARGS = EXEC_KUBECONFIG["users"][0]["user"]["exec"]["args"]


def test_azurecli_keeps_server_tenant_and_cloud():
    assert kubelogin_args(AKS_ARGS, "azurecli") == [
        "get-token", "--login", "azurecli", "--server-id", SERVER_ID,
        "--environment", "AzurePublicCloud", "--tenant-id", TENANT]


def test_workload_identity_reads_the_rest_from_the_environment():
    assert kubelogin_args(AKS_ARGS, "workloadidentity") == [
        "get-token", "--login", "workloadidentity", "--server-id", SERVER_ID, "--environment", "AzurePublicCloud"]


def test_spn_logs_in_as_the_configured_client_not_aks_public_app():
    args = kubelogin_args(AKS_ARGS, "spn", client_id="ci-app-id")
    assert args[args.index("--client-id") + 1] == "ci-app-id"
    assert args[args.index("--tenant-id") + 1] == TENANT


def test_system_assigned_msi_carries_no_client_id():
    assert "--client-id" not in kubelogin_args(AKS_ARGS, "msi")


def test_a_kubeconfig_without_server_id_is_refused():
    with pytest.raises(ValueError, match="--server-id"):
        kubelogin_args(["get-token", "--login", "devicecode"], "azurecli")


def test_only_kubelogin_users_are_rewritten():
    config = dict(EXEC_KUBECONFIG, users=EXEC_KUBECONFIG["users"] + [
        {"name": "cert-user", "user": {"client-certificate-data": "Y2VydA=="}}])
    users = yaml.safe_load(rewrite_kubeconfig(yaml.safe_dump(config), "azurecli"))["users"]
    assert users[0]["user"]["exec"]["args"][2] == "azurecli"
    assert users[1] == {"name": "cert-user", "user": {"client-certificate-data": "Y2VydA=="}}

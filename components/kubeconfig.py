"""Make an AKS user kubeconfig log in with no person present.

With Entra ID, `listClusterUserCredential(format=exec)` returns a kubeconfig whose user runs
`kubelogin get-token --login devicecode ...`, which waits for someone at a browser. `pulumi up` in CI
cannot do that, so the exec arguments are rewritten for the configured login mode, as
`kubelogin convert-kubeconfig -l <mode>` would do on a workstation.
"""
from __future__ import annotations

from typing import Optional

import yaml

# Flags each login mode reads from the arguments; the rest comes from the environment
# (AZURE_CLIENT_ID/AZURE_TENANT_ID/AZURE_FEDERATED_TOKEN_FILE for workloadidentity,
# AAD_SERVICE_PRINCIPAL_CLIENT_SECRET for spn, the Azure CLI's own login for azurecli).
_MODE_FLAGS = {
    "azurecli": ("--environment", "--tenant-id"),
    "workloadidentity": ("--environment",),
    "spn": ("--environment", "--tenant-id", "--client-id"),
    "msi": ("--client-id",),
    "devicecode": ("--environment", "--tenant-id", "--client-id"),
}


def kubelogin_args(args: list[str], login_mode: str, client_id: Optional[str] = None) -> list[str]:
    """The `kubelogin get-token` arguments for `login_mode`, keeping the cluster's server id and tenant."""
    flags = _parse_flags(args)
    if "--server-id" not in flags:
        raise ValueError("the kubeconfig's kubelogin arguments carry no --server-id; is this an Entra ID cluster?")
    if client_id is not None:
        flags["--client-id"] = client_id  # the identity that logs in (spn, user-assigned msi)
    elif login_mode in ("spn", "msi"):
        flags.pop("--client-id", None)  # AKS's own client id is a public app, never the deployer's
    out = ["get-token", "--login", login_mode, "--server-id", flags["--server-id"]]
    for flag in _MODE_FLAGS[login_mode]:
        if flags.get(flag):
            out += [flag, flags[flag]]
    return out


def rewrite_kubeconfig(kubeconfig: str, login_mode: str, client_id: Optional[str] = None) -> str:
    """The kubeconfig with every kubelogin user switched to `login_mode`; other users untouched."""
    document = yaml.safe_load(kubeconfig)
    for user in document.get("users") or []:
        exec_ = (user.get("user") or {}).get("exec")
        if exec_ and exec_.get("command") == "kubelogin":
            exec_["args"] = kubelogin_args(exec_.get("args") or [], login_mode, client_id)
    return yaml.safe_dump(document, sort_keys=False)


def _parse_flags(args: list[str]) -> dict[str, str]:
    flags, i = {}, 0
    while i < len(args):
        if args[i].startswith("--") and i + 1 < len(args) and not args[i + 1].startswith("--"):
            flags[args[i]] = args[i + 1]
            i += 2
        else:
            i += 1
    return flags

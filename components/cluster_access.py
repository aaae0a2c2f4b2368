"""The deploying identity's Kubernetes rights on a cluster with Azure RBAC and no admin group.

With managed Entra ID and Azure RBAC, being the cluster's creator gives no Kubernetes rights; without an
admin group (`cluster.entra.adminGroupObjectIds`) every Kubernetes call of the first `pulumi up` would be
refused. So the deployer gets "Azure Kubernetes Service RBAC Cluster Admin" on the cluster, and a local
command waits until the API server honours it (Azure RBAC takes up to minutes to reach the cluster's
authorization webhook) before the Kubernetes provider sends anything.

`python -m components.cluster_access < kubeconfig` is that wait: it asks the API server, as the deployer,
whether it may create a namespace (a SelfSubjectAccessReview) until the answer is yes.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import time
from typing import Callable

import yaml

RBAC_CLUSTER_ADMIN_ROLE = "b1ff04bb-8a4e-4dc4-8eb5-8693973ce19b"  # built-in Azure Kubernetes Service RBAC Cluster Admin
WAIT_SECONDS, POLL_SECONDS = 900, 10
# Run by the command provider from the project folder, with the interpreter `make venv` made.
WAIT_COMMAND = ".venv/bin/python -m components.cluster_access"


def grant_deployer(name: str, cluster_id, kubeconfig, parent):
    """The role assignment, and the command that waits for it: what the Kubernetes provider must wait for."""
    import pulumi
    from pulumi_azure_native import authorization
    from pulumi_command import local

    from components.roles import role_definition_id

    client = authorization.get_client_config_output(opts=pulumi.InvokeOutputOptions(parent=parent))
    grant = authorization.RoleAssignment(
        f"{name}-deployer-admin", principal_id=client.object_id, scope=cluster_id,
        role_definition_id=role_definition_id(client.subscription_id, RBAC_CLUSTER_ADMIN_ROLE),
        opts=pulumi.ResourceOptions(parent=parent))
    # The kubeconfig goes in on stdin, never on a command line or in the environment.
    return local.Command(f"{name}-deployer-admin-ready", create=WAIT_COMMAND, stdin=kubeconfig,
                         triggers=[grant.id], opts=pulumi.ResourceOptions(parent=parent, depends_on=[grant]))


def may_deploy(kubeconfig: dict) -> bool:
    """Whether the kubeconfig's identity may create a namespace; False while the API server says no or cannot
    be asked yet (kubelogin still logging in, the webhook not yet answering)."""
    from kubernetes import client, config
    from kubernetes.client.rest import ApiException
    from urllib3.exceptions import HTTPError

    api_client = config.new_client_from_config_dict(kubeconfig)
    review = client.V1SelfSubjectAccessReview(spec=client.V1SelfSubjectAccessReviewSpec(
        resource_attributes=client.V1ResourceAttributes(verb="create", resource="namespaces")))
    try:
        answer = client.AuthorizationV1Api(api_client).create_self_subject_access_review(review, _request_timeout=30)
    except (ApiException, HTTPError, OSError) as err:
        print(f"not yet: {getattr(err, 'status', None) or type(err).__name__}", flush=True)
        return False
    finally:
        api_client.close()
    return bool(answer.status.allowed)


def wait(kubeconfig: dict, timeout: float = WAIT_SECONDS, poll: float = POLL_SECONDS,
         check: Callable[[dict], bool] = may_deploy, sleep=time.sleep, clock=time.monotonic) -> bool:
    deadline = clock() + timeout
    while not check(kubeconfig):
        if clock() + poll > deadline:
            return False
        sleep(poll)
    return True


def missing_login_commands(kubeconfig: dict) -> list[str]:
    """The exec plugins (kubelogin) the kubeconfig's users log in with that this machine does not have."""
    commands = {(u.get("user") or {}).get("exec", {}).get("command") for u in kubeconfig.get("users") or []}
    return sorted(c for c in commands if c and shutil.which(c) is None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m components.cluster_access", description=__doc__)
    parser.add_argument("--timeout", type=float, default=WAIT_SECONDS)
    args = parser.parse_args(argv)
    kubeconfig = yaml.safe_load(sys.stdin.read())
    if missing := missing_login_commands(kubeconfig):
        # Without it the client sends no token and every answer is 401: waiting would only blame the role.
        print(f"{', '.join(missing)} is not on PATH; the cluster's kubeconfig logs in through it "
              "(install kubelogin: https://azure.github.io/kubelogin/install.html)", file=sys.stderr)
        return 1
    started = time.monotonic()
    if wait(kubeconfig, args.timeout):
        print(f"the deploying identity may deploy into the cluster ({time.monotonic() - started:.0f} s)")
        return 0
    print(f"after {args.timeout:g} s the API server still refuses the deploying identity; check its role "
          "assignment 'Azure Kubernetes Service RBAC Cluster Admin' on the cluster, or set "
          "cluster.entra.adminGroupObjectIds to a group it belongs to", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())

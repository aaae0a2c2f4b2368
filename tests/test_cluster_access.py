"""The deployer's Kubernetes rights on an Azure RBAC cluster without an admin group: granted, then waited for.

No AKS API server can run here; a stand-in on 127.0.0.1 answers SelfSubjectAccessReviews as one whose Azure
RBAC webhook has not yet seen the new role assignment would (denied), then as one that has (allowed).
"""
import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml

from components.cluster_access import RBAC_CLUSTER_ADMIN_ROLE, WAIT_COMMAND, may_deploy, wait
from pulumi_mocks import ROOT, SUBSCRIPTION, run_program, stack_file_config
from test_serving import SECRET_SIG, SECRET_VALUE

TOKEN = "stand-in-entra-token"


class Reviews(BaseHTTPRequestHandler):
    denials = 0
    asked: list = []

    def do_POST(self):  # noqa: N802 (http.server's naming)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).asked.append((self.path, self.headers.get("Authorization"), body["spec"]["resourceAttributes"]))
        allowed = len(type(self).asked) > type(self).denials
        answer = json.dumps({**body, "status": {"allowed": allowed}}).encode()
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


@pytest.fixture
def api_server():
    Reviews.asked = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Reviews)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


def kubeconfig(server) -> dict:
    return {"apiVersion": "v1", "kind": "Config", "current-context": "aks",
            "clusters": [{"name": "aks", "cluster": {"server": f"http://127.0.0.1:{server.server_port}"}}],
            "contexts": [{"name": "aks", "context": {"cluster": "aks", "user": "deployer"}}],
            "users": [{"name": "deployer", "user": {"token": TOKEN}}]}


def test_the_wait_asks_as_the_deployer_until_the_api_server_allows_it(api_server):
    Reviews.denials = 2
    slept = []
    assert wait(kubeconfig(api_server), timeout=60, poll=5, sleep=slept.append)
    assert slept == [5, 5] and len(Reviews.asked) == 3
    path, authorization, attributes = Reviews.asked[0]
    assert path == "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
    assert authorization == f"Bearer {TOKEN}" and attributes == {"verb": "create", "resource": "namespaces"}


def test_the_wait_gives_up_and_says_what_to_check(api_server):
    Reviews.denials = 10 ** 6
    done = subprocess.run([sys.executable, "-m", "components.cluster_access", "--timeout", "0"], cwd=ROOT,
                          input=yaml.safe_dump(kubeconfig(api_server)), capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "'Azure Kubernetes Service RBAC Cluster Admin' on the cluster" in done.stderr
    assert TOKEN not in done.stdout + done.stderr


def test_an_unreachable_api_server_is_not_yet_and_not_an_error(api_server):
    unreachable = kubeconfig(api_server)
    api_server.shutdown()
    api_server.server_close()
    assert may_deploy(unreachable) is False


def test_without_an_admin_group_the_deployer_is_granted_cluster_admin_and_kubernetes_waits_for_it():
    run = run_program(stack_file_config("dev"), stack="dev")  # dev: Azure RBAC, no admin group
    grant = run.named("cluster-deployer-admin").inputs
    assert grant["roleDefinitionId"].endswith(f"/roleDefinitions/{RBAC_CLUSTER_ADMIN_ROLE}")
    assert grant["principalId"] == "deployer-oid" and grant["scope"].endswith("/cluster-aks")
    ready = run.named("cluster-deployer-admin-ready")
    stdin = ready.inputs["stdin"]
    assert stdin[SECRET_SIG] == SECRET_VALUE  # the kubeconfig goes in as a secret
    assert ready.inputs["create"] == WAIT_COMMAND and yaml.safe_load(stdin["value"])["kind"] == "Config"
    assert "cluster-deployer-admin" in ready.depends_on
    assert "cluster-deployer-admin-ready" in run.one("pulumi:providers:kubernetes").depends_on
    assert f"/subscriptions/{SUBSCRIPTION}/" in grant["roleDefinitionId"]


def test_an_admin_group_needs_no_grant():
    config = stack_file_config("dev")
    config["cluster"]["entra"] = {"adminGroupObjectIds": ["3f2a9c4e-0b1d-4e5f-8a7b-6c9d0e1f2a3b"]}
    run = run_program(config, stack="dev")
    assert not [r for r in run.resources if r.name.startswith("cluster-deployer-admin")]


def test_without_kubelogin_the_wait_stops_at_once_naming_it():
    config = {"apiVersion": "v1", "kind": "Config", "users": [{"name": "u", "user": {"exec": {
        "apiVersion": "client.authentication.k8s.io/v1beta1", "command": "kubelogin-not-installed", "args": []}}}]}
    done = subprocess.run([sys.executable, "-m", "components.cluster_access", "--timeout", "900"], cwd=ROOT,
                          input=yaml.safe_dump(config), capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.startswith("kubelogin-not-installed is not on PATH; the cluster's kubeconfig logs in through it")

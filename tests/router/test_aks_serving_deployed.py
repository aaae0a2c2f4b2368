"""`python -m aks_serving` against a deployed stack: outputs from the Pulumi CLI, the cluster through the
official kubernetes client with an exec-plugin kubeconfig, and a real router on 127.0.0.1.

No Pulumi CLI, kubelogin or Kubernetes API server can run on these machines: stand-in `pulumi` and
`kubelogin` executables on PATH print the stack's outputs and a token, and kube_standin stands in for
the API server (pods, their logs, port-forwards, Secrets, the router's ConfigMap and Lease).
"""
from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
import time
import typing
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from components.config import parse_stack_config
from components.router import router_config
from components.router_config import config_text
from components.workload import selector
from kube_standin import TOKEN, endpoint, endpoint_slice
from router.backends.kubernetes import Cluster
from router.settings import RouterConfig
from router_testkit import free_port, until

pytestmark = pytest.mark.asyncio
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
from local_stack import dev_config  # noqa: E402

ROUTER_NS, MODELS_NS = "router-ns", "aks-serving-models"
KEYS = {"diabetes": ("diabetes-primary-0", "diabetes-secondary-0"),
        "sentiment-ab": ("ab-primary-0", "ab-secondary-0")}
CLI_TIMEOUT = 60


def kubeconfig(server: str) -> str:
    """An AKS Entra ID kubeconfig: the user is a kubelogin exec plugin (here the stand-in on PATH)."""
    return json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "aks",
        "clusters": [{"name": "aks", "cluster": {"server": server}}],
        "contexts": [{"name": "aks", "context": {"cluster": "aks", "user": "clusterUser"}}],
        "users": [{"name": "clusterUser", "user": {"exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1", "command": "kubelogin",
            "args": ["get-token", "--login", "azurecli", "--server-id", "6dae42f8-4368-4678-94ff-3960e28e3630"],
            "interactiveMode": "Never"}}}]})


def stand_in_tools(folder: Path, outputs: dict) -> dict[str, str]:
    """`pulumi` and `kubelogin` stand-ins on PATH; returns the environment to run the CLI with."""
    folder.mkdir()
    (folder / "outputs.json").write_text(json.dumps(outputs))
    tools = {
        "pulumi": ("# A stand-in for the Pulumi CLI (none on this machine): prints the deployed stack's outputs.\n"
                   f'[ "$*" = "stack output --json --show-secrets --stack test" ] || {{ echo "unexpected: $*" >&2; exit 2; }}\n'
                   f"cat {folder / 'outputs.json'}\n"),
        "kubelogin": ("# A stand-in for kubelogin (no Entra ID here): the token the stand-in API server accepts.\n"
                      f'[ "$1" = get-token ] || exit 2\n'
                      f'echo "$*" >> {folder / "kubelogin.args"}\n'
                      f"echo '{json.dumps({'apiVersion': 'client.authentication.k8s.io/v1beta1', 'kind': 'ExecCredential', 'status': {'token': TOKEN}})}'\n"),
    }
    for name, body in tools.items():
        (folder / name).write_text("#!/bin/sh\n" + body)
        (folder / name).chmod(0o755)
    return {**os.environ, "PATH": f"{folder}{os.pathsep}{os.environ['PATH']}"}


async def cli(env: dict, *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "aks_serving", *args, "--stack", "test", cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), CLI_TIMEOUT)
    return process.returncode, out.decode(), err.decode()


def secret(owner: str) -> dict:
    primary, secondary = KEYS[owner]
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": f"{owner}-keys", "labels": {"aks-serving/keys-for": owner}},
            "data": {"primaryKey": base64.b64encode(primary.encode()).decode(),
                     "secondaryKey": base64.b64encode(secondary.encode()).decode()}}


def pod(name: str, labels: dict, container: str, ports: list[dict] = ()) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels},
            "spec": {"containers": [{"name": container, "image": "x", "ports": list(ports)}]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}


@pytest_asyncio.fixture
async def deployed(standin, models, router_client, tmp_path):
    """The dev stack's router config in its ConfigMap, a real router pod (the Lease's holder) serving it with
    one model replica behind every service, key Secrets, and the stand-in CLIs with the stack's outputs."""
    signing = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = tmp_path / "public.pem"
    public.write_bytes(signing.public_key().public_bytes(serialization.Encoding.PEM,
                                                         serialization.PublicFormat.SubjectPublicKeyInfo))
    document = router_config(parse_stack_config(dev_config()), ROUTER_NS)
    standin.put("configmaps", ROUTER_NS, {"metadata": {"name": "router-config"},
                                          "data": {"config.json": config_text(document)}})
    for owner in KEYS:
        standin.put("secrets", ROUTER_NS, secret(owner))
    (model,) = await models(1)
    for service in document["services"]:
        standin.put("endpointslices", MODELS_NS, endpoint_slice(service, service, model.server.port,
                                                                [endpoint("127.0.0.1")]))
        standin.scales[(MODELS_NS, service)] = 1

    # The router pod runs the ConfigMap's config; only where it finds the API and the token key differ here.
    token_file = tmp_path / "sa-token"
    token_file.write_text(TOKEN)
    running = json.loads(json.dumps(document))
    running["router"]["cluster"].update(apiServer=str(standin.server.make_url("")).rstrip("/"),
                                        tokenFile=str(token_file), caFile=None, leaseSeconds=3)
    for settings in [*running["services"].values(), *running["endpoints"].values()]:
        if settings["auth"]["mode"] == "token":
            settings["auth"]["token"]["publicKeyFiles"] = [str(public)]
    admin_port = free_port()
    cluster = Cluster(RouterConfig.model_validate(running).router.cluster, admin_port, identity="router-7d9f-abcde",
                      pod_ip="127.0.0.1")
    client, router = await router_client(running, cluster)
    admin = TestServer(router.admin_app(), host="127.0.0.1", port=admin_port)
    await admin.start_server()
    standin.put("pods", ROUTER_NS, pod("router-7d9f-abcde", selector("router", "router"), "router",
                                       [{"name": "http", "containerPort": 8080}, {"name": "admin", "containerPort": 8081}]))
    standin.forwards[(ROUTER_NS, "router-7d9f-abcde", 8081)] = admin_port
    assert await until(lambda: cluster.is_leader)

    pem = signing.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    outputs = {"kubeconfig": kubeconfig(str(standin.server.make_url("")).rstrip("/")), "routerNamespace": ROUTER_NS,
               "tokenSigningKey": pem, "services": {}, "endpoints": {}}
    env = stand_in_tools(tmp_path / "bin", outputs)
    try:
        yield env, client
    finally:
        await admin.close()


async def test_status_is_make_status_table_from_the_leader_through_a_port_forward(deployed, standin):
    env, _ = deployed
    code, out, err = await cli(env, "status")
    assert code == 0, err
    header, *rows = out.splitlines()
    assert header.split()[:3] == ["SERVICE", "REPLICAS", "DESIRED"]
    assert [r.split()[0] for r in rows] == ["diabetes", "sentiment", "sentiment-ab-v1", "sentiment-ab-v2"]
    assert rows[0].split()[1:3] == ["1/1", "ready"]
    # Reached through a port-forward (the NetworkPolicy would stop the API server's pod proxy).
    assert ("create", "", "pods", "portforward", ROUTER_NS) in standin.calls


async def test_logs_of_a_service_and_of_an_endpoint_version(deployed, standin):
    env, _ = deployed
    for name in ("diabetes-5c8-a", "diabetes-5c8-b"):
        standin.put("pods", MODELS_NS, pod(name, selector("diabetes", "model"), "model"))
        standin.log(MODELS_NS, name, f"{name} starting", f"{name} init() done", f"{name} scored 1 row")
    standin.put("pods", MODELS_NS, pod("sentiment-ab-v2-77-x", selector("sentiment-ab-v2", "model"), "model"))
    standin.log(MODELS_NS, "sentiment-ab-v2-77-x", "v2 ready")

    code, out, err = await cli(env, "logs", "diabetes", "--tail", "2")
    assert code == 0, err
    assert out.splitlines() == ["[diabetes-5c8-a] diabetes-5c8-a init() done", "[diabetes-5c8-a] diabetes-5c8-a scored 1 row",
                                "[diabetes-5c8-b] diabetes-5c8-b init() done", "[diabetes-5c8-b] diabetes-5c8-b scored 1 row"]
    # A pod whose container has not started has no log yet: it is named, the others are still shown.
    standin.put("pods", MODELS_NS, pod("diabetes-5c8-c", selector("diabetes", "model"), "model"))
    code, out, err = await cli(env, "logs", "diabetes", "--tail", "1")
    assert code == 1 and "diabetes-5c8-c: the log of pod aks-serving-models/diabetes-5c8-c: the API server " \
                         "answered 404" in err
    assert out.splitlines() == ["[diabetes-5c8-a] diabetes-5c8-a scored 1 row", "[diabetes-5c8-b] diabetes-5c8-b scored 1 row"]
    code, out, err = await cli(env, "logs", "sentiment-ab", "--version", "v2")
    assert (code, out) == (0, "v2 ready\n"), err  # one pod: no prefix
    code, out, err = await cli(env, "logs", "sentiment-ab")
    assert code == 2 and "sentiment-ab is an endpoint: pick a version with --version (v1 (default), v2)" in err
    code, out, err = await cli(env, "logs", "sentiment-ab", "--version", "v9")
    assert code == 2 and "no version v9" in err


async def test_logs_follow_prints_lines_as_the_pod_writes_them(deployed, standin):
    env, _ = deployed
    standin.put("pods", MODELS_NS, pod("diabetes-5c8-a", selector("diabetes", "model"), "model"))
    standin.log(MODELS_NS, "diabetes-5c8-a", "before")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "aks_serving", "logs", "diabetes", "--follow", "--stack", "test", cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        assert await asyncio.wait_for(process.stdout.readline(), CLI_TIMEOUT) == b"before\n"
        standin.log(MODELS_NS, "diabetes-5c8-a", "written while following")
        assert await asyncio.wait_for(process.stdout.readline(), 10) == b"written while following\n"
    finally:
        process.kill()
        await process.wait()


async def test_regen_key_rotates_one_key_with_no_failed_request_on_the_other(deployed, standin):
    env, client = deployed
    url = "/api/v1/service/diabetes/score"
    old_primary, secondary = KEYS["diabetes"]
    code, out, err = await cli(env, "keys", "diabetes")
    assert code == 0, err
    assert json.loads(out) == {"primaryKey": old_primary, "secondaryKey": secondary}

    failures, sent = [], 0
    rotating = asyncio.ensure_future(cli(env, "regen-key", "diabetes", "primary"))
    deadline = time.monotonic() + 30  # bounded, whatever happens
    settled_at = None
    while time.monotonic() < deadline and (settled_at is None or time.monotonic() < settled_at + 1.0):
        answer = await client.post(url, data=b"[1]", headers={"Authorization": f"Bearer {secondary}"})
        sent += 1
        if answer.status != 200:
            failures.append(answer.status)
        if rotating.done() and settled_at is None:
            settled_at = time.monotonic()  # keep going a second after the rotation, while the router swaps keys
    code, out, err = await rotating
    assert code == 0, err
    assert failures == [] and sent > 20
    assert standin.patched_by == [("secrets", "diabetes-keys", "aks-serving-cli")]  # one patch, saying who

    code, new_primary, _ = await cli(env, "keys", "diabetes", "--only", "primary")
    assert len(new_primary) == 32 and new_primary.isalnum() and new_primary != old_primary
    assert new_primary not in out  # the new key is not printed by regen-key
    assert ("python -m aks_serving keys diabetes --stack test --only primary | \\\n"
            "    pulumi config set --secret --path 'services.diabetes.keys.primaryKey' --stack test") in out

    async def status_with(key: str) -> int:
        return (await client.post(url, data=b"[1]", headers={"Authorization": f"Bearer {key}"})).status

    for _ in range(100):  # the router's Secret watch brings the change within moments
        if await status_with(old_primary) == 401:
            break
        await asyncio.sleep(0.05)
    assert await status_with(old_primary) == 401
    assert await status_with(new_primary) == 200
    assert await status_with(secondary) == 200
    code, out, _ = await cli(env, "keys", "sentiment-ab")  # an endpoint's keys: untouched
    assert json.loads(out) == dict(zip(("primaryKey", "secondaryKey"), KEYS["sentiment-ab"]))


async def test_token_is_minted_with_the_stacks_signing_key_and_accepted_by_the_router(deployed):
    env, client = deployed
    code, out, err = await cli(env, "token", "sentiment")
    assert code == 0, err
    token = json.loads(out)
    assert set(token) == {"accessToken", "tokenType", "refreshAfter", "expiryOn"} and token["tokenType"] == "Bearer"
    assert time.time() < token["refreshAfter"] < token["expiryOn"] <= time.time() + 3600 + 5
    headers = {"Authorization": f"Bearer {token['accessToken']}"}
    assert (await client.post("/api/v1/service/sentiment/score", data=b"[1]", headers=headers)).status == 200
    # Audience is the service: the same token does not open another service.
    assert (await client.post("/api/v1/service/diabetes/score", data=b"[1]", headers=headers)).status == 401
    code, _, err = await cli(env, "token", "diabetes")
    assert code == 2 and "diabetes uses key auth, not tokens (token auth: sentiment)" in err


async def test_outputs_from_a_file_without_the_pulumi_cli_and_another_login_mode(deployed, tmp_path):
    env, _ = deployed
    tools = tmp_path / "bin"
    no_pulumi = tmp_path / "no-pulumi"
    no_pulumi.mkdir()
    (no_pulumi / "kubelogin").symlink_to(tools / "kubelogin")
    path = os.pathsep.join([str(no_pulumi)] + [p for p in env["PATH"].split(os.pathsep) if p != str(tools)])
    env = {**env, "PATH": path}
    code, _, err = await cli(env, "keys", "diabetes")
    assert code == 1 and "the Pulumi CLI is not on PATH" in err and "--outputs FILE" in err

    outputs = tmp_path / "outputs.json"
    outputs.write_text((tools / "outputs.json").read_text())
    code, out, err = await cli(env, "keys", "diabetes", "--outputs", str(outputs), "--kubelogin", "workloadidentity")
    assert code == 0, err
    assert json.loads(out)["secondaryKey"] == KEYS["diabetes"][1]
    # The kubeconfig's kubelogin user ran with the mode asked for, keeping the cluster's server id.
    assert (tools / "kubelogin.args").read_text().splitlines()[-1] == \
        "get-token --login workloadidentity --server-id 6dae42f8-4368-4678-94ff-3960e28e3630"


async def test_the_cli_knows_every_kubelogin_mode_the_stack_does():
    from aks_serving.__main__ import KUBELOGIN_MODES
    from components.config.cluster import Kubelogin
    assert set(KUBELOGIN_MODES) == set(typing.get_args(Kubelogin.model_fields["login_mode"].annotation))


async def test_new_keys_are_made_as_the_stack_makes_them():
    from aks_serving.keys import KEY_LENGTH, new_key
    from components.keys import KEY_LENGTH as STACK_KEY_LENGTH
    keys = {new_key() for _ in range(50)}
    assert KEY_LENGTH == STACK_KEY_LENGTH and len(keys) == 50 and all(k.isalnum() and len(k) == 32 for k in keys)

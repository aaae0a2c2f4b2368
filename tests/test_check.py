"""The offline pull-request check (`make check`, tools/check.py) and the pull-request workflow.

The check runs as CI runs it, a subprocess per stack: exit 0 and a report for dev and prod, a failing
exit naming the policy for a production stack that serves without auth, and no secret printed or written.
The workflow files are validated against GitHub's workflow schema by check-jsonschema, with the network cut
off (its schemas ship inside the package), and read for what the issue asks of each job.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pulumi_mocks import run_program
from tools.check import SECURE_PLACEHOLDER, Redactor, read_stack_file, secret_values, stack_file, table
from tools.manifests import SECRET_SIG, SECRET_VALUE

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.y*ml"))
CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"
# Any HTTP(S) request through requests/urllib fails at once: nothing listens on port 9 (discard) here.
NO_NETWORK = {"HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9", "NO_PROXY": "",
              "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9", "no_proxy": ""}


def run_check(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tools.check", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=900, check=False)


def _explain(done: subprocess.CompletedProcess) -> str:
    return f"exit {done.returncode}\n--- stdout\n{done.stdout[-6000:]}\n--- stderr\n{done.stderr[-4000:]}"


# ---------------------------------------------------------------- the stacks


@pytest.fixture(scope="module", params=["dev", "prod"])
def checked(request, tmp_path_factory):
    out = tmp_path_factory.mktemp(f"check-{request.param}")
    return request.param, out, run_check("--stack", request.param, "--out", str(out))


def test_the_stack_passes_the_offline_check(checked):
    stack, out, done = checked
    assert done.returncode == 0, _explain(done)
    lines = done.stdout.splitlines()
    # The tables: resources by type with a total, every policy with its level, then the two scanners.
    assert any(line.startswith("azure-native:containerservice:ManagedCluster ") and line.split()[-1] == "1"
               for line in lines), _explain(done)
    assert any(line.split()[:1] == ["total"] and int(line.split()[-1]) > 20 for line in lines)
    assert any(line.split()[:2] == ["production-service-auth", "mandatory"] for line in lines)
    assert any(line.startswith("kubernetes-validate --strict") and "0 schema errors" in line for line in lines)
    assert any(line.startswith("checkov:") and ", 0 failed," in line for line in lines)
    assert lines[-1] == f"check passed (stack {stack})"
    assert sorted(p.name for p in out.iterdir()) == ["azure.json", "helm-releases.json", "k8s"]
    assert list((out / "k8s").glob("deployment.*.yaml"))


def test_no_secret_is_printed_or_written(checked):
    stack, out, done = checked
    config, secret_sections = read_stack_file(stack_file(stack))
    secrets = secret_values(run_program(config, stack=stack, secret_sections=secret_sections))
    if stack == "dev":  # key-auth services: generated keys, and a token-signing key
        assert len(secrets) > 4
    written = [p for p in out.rglob("*") if p.is_file()]
    assert written
    leaks = [(str(p.relative_to(out)), s[:6]) for p in written for s in secrets if s in p.read_text()]
    leaks += [("output", s[:6]) for s in secrets if s in done.stdout + done.stderr]
    assert leaks == []


def test_the_default_output_is_build_and_the_stack_file_its_own(tmp_path):
    """`make check STACK=prod` runs `python -m tools.check --stack prod`, which writes build/prod/."""
    done = subprocess.run(["make", "-n", "check", "STACK=prod"], cwd=ROOT, capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert "-m tools.check --stack prod" in done.stdout
    missing = run_check("--stack", "nosuch")
    assert missing.returncode == 2 and "Pulumi.nosuch.yaml" in missing.stderr


# ---------------------------------------------------------------- a stack that must fail


def _prod_with(tmp_path: Path, **sections) -> Path:
    document = yaml.safe_load((ROOT / "Pulumi.prod.yaml").read_text())
    document["config"].update({f"aks-serving:{k}": v for k, v in sections.items()})
    path = tmp_path / "Pulumi.prod.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def test_a_production_service_without_auth_fails_the_check(tmp_path):
    # Azure ML v1 allowed auth off; the config accepts it, the pack refuses it on production.
    services = yaml.safe_load((ROOT / "Pulumi.prod.yaml").read_text())["config"]["aks-serving:services"]
    services["diabetes"]["authEnabled"] = False
    path = _prod_with(tmp_path, services=services)
    done = run_check("--stack", "prod", "--stack-file", str(path), "--out", str(tmp_path / "out"))
    assert done.returncode == 1, _explain(done)
    lines = done.stdout.splitlines()
    row = next(line.split() for line in lines if line.startswith("production-service-auth "))
    assert row == ["production-service-auth", "mandatory", "1", "0"]
    assert any(line.startswith("  MANDATORY production-service-auth [stack]:") for line in lines)
    assert "service diabetes has auth mode 'none' on a production stack" in done.stdout
    assert lines[-1].startswith("check FAILED: 1 mandatory policy violation")


def test_a_config_error_stops_the_check_before_anything_is_written(tmp_path):
    path = _prod_with(tmp_path, cluster={"name": "1-bad-name", "purpose": "production"})
    done = run_check("--stack", "prod", "--stack-file", str(path), "--out", str(tmp_path / "out"))
    assert done.returncode == 2, _explain(done)
    assert "could not run" in done.stderr and "cluster.name" in done.stderr
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- secrets, in-process


def test_secure_values_become_placeholders_in_secret_sections(tmp_path):
    path = tmp_path / "Pulumi.x.yaml"
    path.write_text(yaml.safe_dump({"config": {
        "azure-native:location": "westeurope",
        "aks-serving:workspace": {"name": "w", "location": "westeurope"},
        "aks-serving:router": {"tls": {"mode": "custom", "key": {"secure": "v1:AAAA"}}},
    }}))
    config, secret_sections = read_stack_file(path)
    assert config == {"workspace": {"name": "w", "location": "westeurope"},
                      "router": {"tls": {"mode": "custom", "key": SECURE_PLACEHOLDER}}}
    assert secret_sections == ("router",)


class _Registered:
    def __init__(self, type_: str, inputs: dict, secret_outputs=()):
        self.type, self.name, self.inputs, self.parent = type_, "r", inputs, ""
        self.secret_outputs = list(secret_outputs)


class _Run:
    def __init__(self, resources, exports=None, secret_exports=()):
        self.resources, self.exports, self.secret_exports = resources, exports or {}, set(secret_exports)


def _marked(value):
    return {SECRET_SIG: SECRET_VALUE, "value": value}


def test_what_counts_as_a_secret():
    run = _Run([
        # Pulumi marks the whole registry block secret for its password; the server is not a secret.
        _Registered("docker:index/image:Image", {"registry": _marked(
            {"server": "mlwdevacr.azurecr.io", "username": "00000000-0000", "password": "refresh-token-123"})}),
        _Registered("kubernetes:core/v1:Secret", {"stringData": _marked({"primary": "key-aaaaaaaa"}),
                                                  "metadata": {"name": "diabetes-keys"}}),
        _Registered("random:index/randomPassword:RandomPassword", {"length": 32.0, "result": "generated-bbbbbbbb"},
                    secret_outputs=["result"]),
        _Registered("kubernetes:core/v1:ConfigMap", {"data": {"config.yaml": "services: {}"}}),
    ], exports={"keys": {"diabetes": {"primaryKey": "exported-cccccccc"}}, "clusterName": "aks-serving-dev"},
        secret_exports={"keys"})
    found = secret_values(run)
    assert found == {"refresh-token-123", "key-aaaaaaaa", "generated-bbbbbbbb", "exported-cccccccc",
                     SECURE_PLACEHOLDER}
    redact = Redactor(found)
    assert redact("token refresh-token-123 for mlwdevacr.azurecr.io") == "token [secret] for mlwdevacr.azurecr.io"


def test_table_aligns_numbers_right():
    assert table(["type", "count"], [("a", 1), ("longer", 12)], numeric=[1]) == [
        "type    count", "------  -----", "a           1", "longer     12"]


# ---------------------------------------------------------------- the workflow files


def _schema_check(*paths: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(CHECK_JSONSCHEMA), "--builtin-schema", "vendor.github-workflows", *map(str, paths)],
                          capture_output=True, text=True, timeout=120, check=False, env={**os.environ, **NO_NETWORK})


def test_the_workflows_match_githubs_schema_offline():
    assert WORKFLOWS, "no workflow in .github/workflows"
    done = _schema_check(*WORKFLOWS)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_schema_check_catches_a_broken_workflow(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text(yaml.safe_dump({"on": {"pull_request": None}, "permissions": {"id-token": "yes"},
                                      "jobs": {"check": {"steps": [{"run": "make check"}]}}}))
    done = _schema_check(broken)
    assert done.returncode == 1 and "runs-on" in done.stdout + done.stderr


def _workflow() -> dict:
    documents = [yaml.safe_load(p.read_text()) for p in WORKFLOWS]
    # PyYAML reads the key `on` as the boolean True (YAML 1.1).
    return {"on": {k: v for d in documents for k, v in (d.get("on") or d.get(True) or {}).items()},
            "jobs": {k: v for d in documents for k, v in d["jobs"].items()}}


def test_every_pull_request_gets_the_offline_check_without_secrets():
    workflow = _workflow()
    assert "pull_request" in workflow["on"]
    job = workflow["jobs"]["offline-check"]
    assert job["strategy"]["matrix"]["stack"] == ["dev", "prod"]
    assert job["permissions"] == {"contents": "read"}
    assert "make check STACK=${{ matrix.stack }}" in [s.get("run") for s in job["steps"]]
    assert "secrets." not in yaml.safe_dump(job) and "if" not in job  # so it runs for forks too


def test_same_repository_pull_requests_get_a_preview_with_the_policy_pack():
    job = _workflow()["jobs"]["preview"]
    assert "github.event.pull_request.head.repo.full_name == github.repository" in job["if"]
    assert job["strategy"]["matrix"]["stack"] == ["dev", "prod"]
    assert job["permissions"] == {"id-token": "write", "contents": "read", "pull-requests": "write"}
    assert job["env"]["ARM_USE_OIDC"] == "true"
    assert job["env"]["PULUMI_ACCESS_TOKEN"] == "${{ secrets.PULUMI_ACCESS_TOKEN }}"
    uses = {s["uses"].split("@")[0]: s for s in job["steps"] if "uses" in s}
    assert uses["azure/login"]["uses"] == "azure/login@v2"
    assert set(uses["azure/login"]["with"]) == {"client-id", "tenant-id", "subscription-id"}  # OIDC: no secret
    assert "azure/use-kubelogin" in uses
    assert uses["actions/setup-python"]["with"]["python-version"] == "3.11"
    pulumi = uses["pulumi/actions"]
    assert pulumi["uses"] == "pulumi/actions@v6"
    assert pulumi["with"]["command"] == "preview" and pulumi["with"]["policyPacks"] == "policies"
    assert pulumi["with"]["comment-on-pr"] is True and "matrix.stack" in pulumi["with"]["stack-name"]
    # The virtualenvs come first: the program's and the pack's.
    runs = " ".join(s.get("run", "") for s in job["steps"])
    assert ".venv/.installed" in runs and ".venv-policies/.installed" in runs


def test_kubelogin_in_ci_asks_github_for_a_fresh_assertion_at_each_token_instead_of_an_expiring_cli_session():
    # The Azure CLI session of azure/login lives on one GitHub OIDC assertion (AADSTS700024 once it expires).
    # kubelogin's workloadidentity mode on GitHub Actions fetches a new one per token (its GithubActionsCredential,
    # v0.2.0+); AAD_LOGIN_METHOD overrides the stack kubeconfig's azurecli.
    job = _workflow()["jobs"]["preview"]
    assert job["env"]["AAD_LOGIN_METHOD"] == "workloadidentity"
    assert job["env"]["AZURE_CLIENT_ID"] == "${{ secrets.AZURE_CLIENT_ID }}"
    assert job["env"]["AZURE_TENANT_ID"] == "${{ secrets.AZURE_TENANT_ID }}"
    kubelogin = next(s for s in job["steps"] if s.get("uses", "").startswith("azure/use-kubelogin"))
    version = tuple(int(x) for x in kubelogin["with"]["kubelogin-version"].lstrip("v").split("."))
    assert version >= (0, 2, 0) and job["permissions"]["id-token"] == "write"

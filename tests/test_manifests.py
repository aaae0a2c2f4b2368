"""The Kubernetes objects the program registers, as manifests: schema-valid, scanned, scaled by the right owner.

Each stack runs once under Pulumi's mocks (tests/pulumi_mocks.py); its objects are written as plain
manifests (tools/manifests.py), validated strictly by kubernetes-validate for the Kubernetes version the
stack targets (tools/validate.py) and scanned by checkov from its own virtualenv (tools/scan.py), whose
only allowed failures are tools/checkov-skips.yaml's. The hand-made cases below pin down the conversion,
the skip file and the report parsing on their own.
"""
from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from pulumi_mocks import run_program, stack_file_config
from tools import scan as scan_module
from tools.manifests import (REDACTED_DATA, REDACTED_FIELD, REDACTED_TEXT, SECRET_SIG, SECRET_VALUE, Manifest,
                             is_cloud_resource, is_manifest, manifests, to_manifest, unwrap, write_manifests)
from tools.scan import Failure, Skip, load_skips, parse_report, parse_skips, scan
from tools.validate import DEFAULT_KUBERNETES_VERSION, kubernetes_version, validate_dir, validate_object

STACKS = ("dev", "prod")
COMPONENT = "app.kubernetes.io/component"
HPA_KINDS = {("autoscaling/v1", "HorizontalPodAutoscaler"), ("autoscaling/v2", "HorizontalPodAutoscaler")}
SCALED_OBJECT = ("keda.sh/v1alpha1", "ScaledObject")
# A leaf inside a secret-marked structure counts as secret when its key names a credential: Pulumi marks a
# whole top-level property secret when any value in it is (a registry's server beside its password).
CREDENTIAL_KEY = re.compile(r"password|secret|token|key|credential", re.IGNORECASE)
MIN_SECRET_LENGTH = 8  # shorter strings ("true", a port) would match by accident; generated keys are 32+


@dataclass
class Built:
    stack: str
    run: object
    out: Path
    manifests: list[Manifest]
    written: object
    validation: object = None
    scan: object = None

    def of_kind(self, kind: str) -> list[Manifest]:
        return [m for m in self.manifests if m.kind == kind]


@pytest.fixture(scope="module", params=STACKS)
def built(request, tmp_path_factory) -> Built:
    config = stack_file_config(request.param)
    run = run_program(config, stack=request.param)
    out = tmp_path_factory.mktemp(f"build-{request.param}")
    written = write_manifests(run, out)
    result = Built(request.param, run, out, manifests(run), written)
    result.validation = validate_dir(out / "k8s", kubernetes_version(config))
    result.scan = scan(out / "k8s")
    return result


# ---------------------------------------------------------------- the stacks' objects


def test_the_stack_has_kubernetes_objects(built):
    # Every check below is vacuous without objects; the router runs on every stack.
    assert built.manifests, f"{built.stack}: the program registered no Kubernetes objects"
    assert built.of_kind("Deployment"), f"{built.stack}: no Deployment"
    assert len(built.written.files) == len(built.manifests)


def test_every_manifest_passes_kubernetes_validate_strictly(built):
    report = built.validation
    assert report.version == DEFAULT_KUBERNETES_VERSION  # neither stack pins cluster.kubernetesVersion
    assert report.errors == {}
    assert report.checked + len(report.schema_unknown) == len(built.written.files)


def test_checkov_finds_nothing_outside_the_skip_file(built):
    result = built.scan
    assert result.resource_count >= len(built.manifests)  # checkov read every object (and their pods)
    assert result.parsing_errors == []
    assert [str(f) for f in result.failures] == []


def test_no_deployment_sets_replicas(built):
    # The router (models) or the router HPA (the router on production) owns every count; a declared count
    # would fight them on each `pulumi up` (server-side apply).
    assert [m.name for m in built.of_kind("Deployment") if "replicas" in m.object["spec"]] == []


def test_nothing_autoscales_a_model(built):
    models = {(m.namespace, m.name) for m in built.of_kind("Deployment") if m.labels.get(COMPONENT) == "model"}
    assert [m.name for m in _scalers(built) if _target(m) in models] == []


def test_the_router_hpa_exists_only_on_production(built):
    routers = {(m.namespace, m.name) for m in built.of_kind("Deployment") if m.labels.get(COMPONENT) == "router"}
    assert routers, "no Deployment labelled app.kubernetes.io/component: router"
    router_hpas = [m for m in _scalers(built) if _target(m) in routers]
    if built.stack == "prod":
        assert [m.kind for m in router_hpas] == ["HorizontalPodAutoscaler"]
    else:
        assert router_hpas == []


def test_no_secret_lands_in_the_written_files(built):
    secrets = _secret_values(built)
    assert secrets, "expected secrets to look for (the kubeconfig export at least)"
    leaks = {}
    for path in sorted(p for p in built.out.rglob("*") if p.is_file()):
        text = path.read_text()
        documents = json.loads(text) if path.suffix == ".json" else list(yaml.safe_load_all(text))
        strings = list(_strings(documents))
        found = {s[:6] + "..." for s in secrets if any(s in leaf for leaf in strings)}
        if any("PRIVATE KEY-----" in leaf for leaf in strings):  # secret whether or not the record marks it
            found.add("a PEM private key")
        if found:
            leaks[str(path.relative_to(built.out))] = sorted(found)
    assert leaks == {}


def test_secrets_reach_pods_only_through_secret_objects(built):
    # A secret-marked field anywhere else (a key inlined in a pod spec) is a defect, and is not written.
    assert built.written.misplaced_secrets == []


def _scalers(built: Built) -> list[Manifest]:
    return [m for m in built.manifests if (m.object["apiVersion"], m.kind) in HPA_KINDS | {SCALED_OBJECT}]


def _target(scaler: Manifest) -> tuple[str, str] | None:
    ref = scaler.object["spec"].get("scaleTargetRef") or {}
    # A KEDA ScaledObject's target kind defaults to Deployment; an HPA names it.
    if ref.get("kind", "Deployment") != "Deployment":
        return None
    return scaler.namespace, ref.get("name")


def _secret_values(built: Built) -> set[str]:
    found: set[str] = set()
    for m in built.of_kind("Secret"):
        for key in ("data", "stringData"):
            for value in (m.object.get(key) or {}).values():
                found.add(value)
                if key == "data":
                    found.add(base64.b64decode(value).decode(errors="replace"))
    for resource in built.run.resources:
        _collect_marked(resource.inputs, found)
        for name in getattr(resource, "secret_outputs", ()):
            _collect_secret(resource.inputs.get(name), found)
    for name in built.run.secret_exports:
        _collect_secret(built.run.exports[name], found)
    return {s for s in found if isinstance(s, str) and len(s) >= MIN_SECRET_LENGTH}


def _collect_marked(value, found: set) -> None:
    if isinstance(value, dict):
        if value.get(SECRET_SIG) == SECRET_VALUE:
            _collect_secret(unwrap(value)[0], found)
            return
        for inner in value.values():
            _collect_marked(inner, found)
    elif isinstance(value, list):
        for inner in value:
            _collect_marked(inner, found)


def _collect_secret(value, found: set, key: str = "") -> None:
    """A secret scalar; in a secret structure, the leaves whose key names a credential."""
    if isinstance(value, dict):
        for k, inner in value.items():
            _collect_secret(inner, found, k if not key or not CREDENTIAL_KEY.search(key) else key)
    elif isinstance(value, list):
        for inner in value:
            _collect_secret(inner, found, key)
    elif isinstance(value, str) and (not key or CREDENTIAL_KEY.search(key)):
        found.add(value)


def _strings(value):
    if isinstance(value, dict):
        for k, inner in value.items():
            yield str(k)
            yield from _strings(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from _strings(inner)
    elif isinstance(value, str):
        yield value


# ---------------------------------------------------------------- manifests from registrations (hand-made)


@dataclass
class Reg:  # the shape of pulumi_mocks.Registered
    type: str
    name: str
    inputs: dict
    parent: str = ""
    ignore_changes: list = field(default_factory=list)


@dataclass
class FakeRun:
    resources: list


def secret(value):
    return {SECRET_SIG: SECRET_VALUE, "value": value}


DEPLOYMENT = Reg("kubernetes:apps/v1:Deployment", "web-deployment", {
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"namespace": "web", "labels": {"a": "b"}, "uid": "from-the-server"},
    "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {
        "metadata": {"labels": {"a": "b"}},
        "spec": {"containers": [{"name": "c", "image": "i@sha256:" + "0" * 64,
                                 "ports": [{"containerPort": 5001.0}], "args": ["--ratio", "0.5"]}]}}},
    "status": {"readyReplicas": 1.0}, "__inputs": {"ignored": True}})


def test_a_registration_becomes_the_manifest_kubectl_would_take():
    m = to_manifest(DEPLOYMENT)
    assert list(m.object) == ["apiVersion", "kind", "metadata", "spec"]  # status and __inputs dropped
    assert m.object["metadata"] == {"namespace": "web", "labels": {"a": "b"}, "name": "web-deployment"}
    container = m.object["spec"]["template"]["spec"]["containers"][0]
    assert container["ports"] == [{"containerPort": 5001}] and type(container["ports"][0]["containerPort"]) is int
    assert container["args"] == ["--ratio", "0.5"]
    assert (m.kind, m.namespace, m.name, m.secret_fields) == ("Deployment", "web", "web-deployment", ())


def test_a_given_name_is_kept_and_a_missing_one_is_the_resource_name():
    named = Reg("kubernetes:core/v1:ConfigMap", "cm", {"apiVersion": "v1", "kind": "ConfigMap",
                                                        "metadata": {"name": "settings"}, "data": {"k": "v"}})
    assert to_manifest(named).name == "settings"
    unnamed = Reg("kubernetes:core/v1:Namespace", "ns", {"apiVersion": "v1", "kind": "Namespace"})
    assert to_manifest(unnamed).name == "ns"


def test_secret_markers_are_unwrapped_at_any_depth():
    assert unwrap({"a": [secret({"b": 1.0})], "c": 2.5}) == ({"a": [{"b": 1}], "c": 2.5}, True)
    assert unwrap({"a": "plain"}) == ({"a": "plain"}, False)


def test_what_counts_as_a_manifest():
    assert is_manifest(DEPLOYMENT)
    issuer = Reg("kubernetes:cert-manager.io/v1:ClusterIssuer", "issuer",
                 {"apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer", "spec": {}})
    assert is_manifest(issuer)
    not_objects = [
        Reg("kubernetes:helm.sh/v3:Release", "cert-manager", {"chart": "cert-manager", "version": "1.0.0"}),
        Reg("pulumi:providers:kubernetes", "k8s", {"kubeconfig": secret("...")}),
        Reg("kubernetes:apps/v1:DeploymentPatch", "patch", {"apiVersion": "apps/v1", "kind": "Deployment"}),
        Reg("aks-serving:index:Router", "router", {}),
        Reg("azure-native:storage:StorageAccount", "sa", {"accountName": "sa"}),
    ]
    assert [r.name for r in not_objects if is_manifest(r)] == []
    assert [r.name for r in not_objects if is_cloud_resource(r)] == ["sa"]


SECRET = Reg("kubernetes:core/v1:Secret", "keys", {
    "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "svc-keys", "namespace": "router"},
    "stringData": secret({"primaryKey": "p" * 32}), "data": {"plainKey": base64.b64encode(b"q" * 32).decode()}})
LEAKY = Reg("kubernetes:apps/v1:Deployment", "leaky", {
    "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "leaky", "namespace": "web"},
    "spec": secret({"template": {"spec": {"containers": [{"name": "c", "env": [{"name": "K", "value": "s" * 32}]}]}}})})
BLOB = Reg("azure-native:storage:Blob", "blob", {"accountName": "sa", "source": object()})
IMAGE = Reg("docker:index/image:Image", "image", {"imageName": "r.azurecr.io/x:1", "registry": secret(
    {"server": "r.azurecr.io", "password": "t" * 32})})


def test_written_files_hold_no_secret_and_name_the_misplaced_ones(tmp_path):
    key = Reg("tls:index/privateKey:PrivateKey", "signing", {"algorithm": "RSA", "privateKeyPem": "PEM" * 20})
    key.secret_outputs = ["privateKeyPem"]
    written = write_manifests(FakeRun([SECRET, LEAKY, IMAGE, key]), tmp_path)
    assert [p.name for p in written.files] == ["deployment.web.leaky.yaml", "secret.router.svc-keys.yaml"]
    on_disk = yaml.safe_load((tmp_path / "k8s" / "secret.router.svc-keys.yaml").read_text())
    assert on_disk["stringData"] == {"primaryKey": REDACTED_TEXT} and on_disk["data"] == {"plainKey": REDACTED_DATA}
    assert yaml.safe_load((tmp_path / "k8s" / "deployment.web.leaky.yaml").read_text())["spec"] == REDACTED_FIELD
    assert written.misplaced_secrets == ["Deployment/web/leaky: spec"]
    cloud = json.loads(written.azure.read_text())
    assert [(r["type"], r["inputs"].get("registry"), r["inputs"].get("privateKeyPem")) for r in cloud] == [
        ("docker:index/image:Image", REDACTED_FIELD, None), ("tls:index/privateKey:PrivateKey", None, REDACTED_FIELD)]
    everything = "".join(p.read_text() for p in tmp_path.rglob("*") if p.is_file())
    assert not any(s in everything for s in ("p" * 32, "q" * 32, "s" * 32, "t" * 32, "PEM" * 20))


def test_uploads_are_written_by_what_they_point_at(tmp_path):
    import pulumi
    blob = Reg("azure-native:storage:Blob", "blob", {"accountName": "sa", "source": pulumi.FileAsset("models/m.pkl")})
    written = write_manifests(FakeRun([blob]), tmp_path)
    assert json.loads(written.azure.read_text())[0]["inputs"]["source"] == {"FileAsset": "models/m.pkl"}


def test_a_rewrite_drops_objects_that_are_gone_and_one_object_twice_is_refused(tmp_path):
    write_manifests(FakeRun([SECRET, DEPLOYMENT]), tmp_path)
    write_manifests(FakeRun([SECRET]), tmp_path)
    assert [p.name for p in (tmp_path / "k8s").iterdir()] == ["secret.router.svc-keys.yaml"]
    twin = Reg(SECRET.type, "keys-again", SECRET.inputs)
    with pytest.raises(ValueError, match="registered twice: keys and keys-again"):
        write_manifests(FakeRun([SECRET, twin]), tmp_path)


# ---------------------------------------------------------------- schema validation (hand-made)


def test_the_version_is_the_stacks_or_the_default():
    assert kubernetes_version({"cluster": {"kubernetesVersion": "1.33.2"}}) == "1.33.2"
    assert kubernetes_version({"cluster": {"name": "c"}}) == DEFAULT_KUBERNETES_VERSION


def test_strict_validation_rejects_unknown_and_mistyped_fields():
    config_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"a": "b"}}
    assert validate_object(config_map, "1.36") == ([], None)
    assert "'replica' was unexpected" in validate_object({**config_map, "replica": 1}, "1.36")[0][0]
    port = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"ports": [{"port": "80"}]}}
    assert validate_object(port, "1.36")[0] == ["spec.ports.0.port: '80' is not of type 'integer'"]


def test_custom_resources_are_schema_unknown_only_when_listed():
    issuer = {"apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer", "metadata": {"name": "acme"}, "spec": {}}
    assert validate_object(issuer, "1.36") == ([], "cert-manager.io/v1 ClusterIssuer")
    # Not checked against networking.k8s.io's NetworkPolicy, whose first label it shares.
    lookalike = {"apiVersion": "networking.example.com/v1", "kind": "NetworkPolicy", "metadata": {"name": "n"}}
    assert "no schema for networking.example.com/v1 NetworkPolicy" in validate_object(lookalike, "1.36")[0][0]
    removed = {"apiVersion": "policy/v1beta1", "kind": "PodSecurityPolicy", "metadata": {"name": "p"}}
    assert "Couldn't find schema" in validate_object(removed, "1.36")[0][0]


def test_a_version_without_schemas_is_refused(tmp_path):
    with pytest.raises(ValueError, match="no schemas for Kubernetes 1.99"):
        validate_dir(tmp_path, "1.99")


# ---------------------------------------------------------------- checkov skips and reports (hand-made)


def test_the_skip_file_parses_and_every_skip_has_a_reason():
    skips = load_skips()
    assert all(s.reason for s in skips)
    assert len({s.id for s in skips}) == len(skips)


def test_skip_entries_are_checked():
    text = """
- id: CKV_K8S_15
  reason: images are pulled by digest
- id: CKV_K8S_38
  resources: ["Deployment.*.router"]
  reason: the router calls the API server
"""
    assert parse_skips(text) == [Skip("CKV_K8S_15", "images are pulled by digest"),
                                 Skip("CKV_K8S_38", "the router calls the API server", ("Deployment.*.router",))]
    assert parse_skips("") == []
    bad = """
- id: CKV_K8S_15
- id: CKV_K8S_15
  reason: twice
- id: CKV_AZURE_1
  reason: not a Kubernetes check
- {id: CKV_K8S_8, reason: r, resource: [x]}
"""
    with pytest.raises(ValueError) as err:
        parse_skips(bad)
    message = str(err.value)
    assert "entry 1: CKV_K8S_15 needs a reason" in message
    assert "entry 2: CKV_K8S_15 is listed twice" in message
    assert "entry 3: id 'CKV_AZURE_1' is not a checkov Kubernetes check id" in message
    assert "entry 4: unknown keys ['resource']" in message


def test_only_unscoped_skips_reach_checkovs_command_line():
    skips = [Skip("CKV_K8S_15", "r"), Skip("CKV_K8S_38", "r", ("Deployment.*.router",)), Skip("CKV2_K8S_6", "r")]
    cmd = scan_module.command(Path("build/k8s"), skips)
    assert cmd[cmd.index("--skip-check") + 1] == "CKV_K8S_15,CKV2_K8S_6"
    assert "--skip-check" not in scan_module.command(Path("build/k8s"), [])


def _check(check_id: str, resource: str) -> dict:
    return {"check_id": check_id, "check_name": "n", "file_path": "/f.yaml", "resource": resource}


def test_a_report_is_parsed_and_scoped_skips_set_failures_aside():
    report = {"check_type": "kubernetes",
              "results": {"failed_checks": [_check("CKV_K8S_38", "Deployment.serving.router"),
                                            _check("CKV_K8S_38", "Deployment.models.diabetes")]},
              "summary": {"passed": 40, "failed": 2, "resource_count": 3}}
    skips = [Skip("CKV_K8S_38", "r", ("Deployment.*.router",))]
    result = parse_report(json.dumps(report), skips)
    assert result.failures == [Failure("CKV_K8S_38", "n", "/f.yaml", "Deployment.models.diabetes")]
    assert [f.resource for f in result.set_aside] == ["Deployment.serving.router"]
    assert (result.passed, result.resource_count, result.ok) == (40, 3, False)
    # Nothing to scan: checkov prints only a summary. Several frameworks: a list of reports.
    assert parse_report(json.dumps({"passed": 0, "failed": 0, "resource_count": 0})).ok
    assert len(parse_report(json.dumps([report, report])).failures) == 4


def test_checkov_runs_and_scoped_skips_apply_to_their_resources_only(tmp_path):
    pod = {"containers": [{"name": "c", "image": "r.azurecr.io/x@sha256:" + "0" * 64}]}
    for name in ("router", "other"):
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": "serving"},
            "spec": {"selector": {"matchLabels": {"a": name}},
                     "template": {"metadata": {"labels": {"a": name}}, "spec": pod}}}))
    skips = [Skip("CKV_K8S_38", "r", ("Deployment.*.router",)), Skip("CKV_K8S_8", "r")]
    result = scan(tmp_path, skips)
    failed = {(f.check_id, f.resource) for f in result.failures}
    assert ("CKV_K8S_38", "Deployment.serving.other") in failed
    assert ("CKV_K8S_38", "Deployment.serving.router") not in failed
    assert [f.resource for f in result.set_aside if f.check_id == "CKV_K8S_38"] == ["Deployment.serving.router"]
    assert not any(check == "CKV_K8S_8" for check, _ in failed)  # skipped everywhere
    assert ("CKV_K8S_22", "Deployment.serving.router") in failed  # a check nobody skipped still fails

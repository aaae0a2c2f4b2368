"""Plain Kubernetes manifests (and the cloud resources beside them) from a mock run of the program.

A mock run (tests/pulumi_mocks.py) records every registration with its state (the inputs, plus what the
stand-in computes) in the engine's wire form: camelCase objects, numbers as doubles, secrets wrapped in a
marker. This module turns the Kubernetes ones back into what `kubectl apply` would take, so
kubernetes-validate and checkov can read them, and writes them under build/ for `make check`. Nothing
secret is written: Secret values become a fixed placeholder, so do the outputs a resource declares secret,
and any other field Pulumi marked secret is replaced and reported, because a secret outside a Secret
object (an inlined key in a pod spec, say) is itself a defect.
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Protocol

import yaml

# A secret on the wire: {SECRET_SIG: SECRET_VALUE, "value": <the plain value>}
# (pulumi/sdk/proto: the "special signature" for secrets).
SECRET_SIG, SECRET_VALUE = "4dabf18193072939515e22adb298388d", "1b47061264138c4ac30d75fd1eb44270"

# What a Secret's values become on disk. `data` must stay base64 (the schema says so), `stringData` is text.
REDACTED_DATA = "cmVkYWN0ZWQ="  # base64 of "redacted"
REDACTED_TEXT = "redacted"
# What any other secret-marked field becomes on disk. Pulumi marks a whole top-level property secret
# when any value inside it is, so the field cannot be kept partly; the file then fails validation, loudly.
REDACTED_FIELD = "<redacted: Pulumi secret>"

# The project's own component types (ComponentResource registrations carry no inputs).
COMPONENT_PACKAGE = "aks-serving"
HELM_RELEASE = "kubernetes:helm.sh/v3:Release"

# Written by the API server or by the Kubernetes provider into its state, never part of a manifest.
_SERVER_FIELDS = ("status",)
_SERVER_METADATA = ("uid", "resourceVersion", "generation", "creationTimestamp", "managedFields", "selfLink")


class _Registered(Protocol):  # tests/pulumi_mocks.Registered, without importing the test helpers
    type: str
    name: str
    inputs: dict
    parent: str


class _Run(Protocol):
    resources: list


@dataclass(frozen=True)
class Manifest:
    resource: str  # the Pulumi resource name
    type: str  # the Pulumi type token, e.g. kubernetes:apps/v1:Deployment
    object: dict  # the plain object, secrets unwrapped: keep it in memory, write `for_disk()`
    secret_fields: tuple[str, ...] = ()  # top-level fields Pulumi marked secret

    @property
    def kind(self) -> str:
        return self.object["kind"]

    @property
    def name(self) -> str:
        return self.object["metadata"]["name"]

    @property
    def namespace(self) -> str | None:
        return self.object["metadata"].get("namespace")

    @property
    def labels(self) -> dict:
        return self.object["metadata"].get("labels") or {}

    @property
    def misplaced_secrets(self) -> list[str]:
        """Secret-marked fields other than a Secret's values, as `Kind/namespace/name: field`."""
        allowed = ("data", "stringData") if self.kind == "Secret" else ()
        return [f"{self.kind}/{self.namespace or '-'}/{self.name}: {f}" for f in self.secret_fields if f not in allowed]

    def for_disk(self) -> dict:
        """The object with every secret value replaced by a placeholder."""
        obj = copy.deepcopy(self.object)
        values = {"data": REDACTED_DATA, "stringData": REDACTED_TEXT} if self.kind == "Secret" else {}
        for key, placeholder in values.items():  # every value, marked secret or not: the keys stay readable
            if isinstance(obj.get(key), dict):
                obj[key] = {k: placeholder for k in obj[key]}
        for key in self.secret_fields:
            if key not in values:
                obj[key] = REDACTED_FIELD
        return obj


def unwrap(value: Any) -> tuple[Any, bool]:
    """The plain value and whether any part of it was marked secret; integral doubles become ints.

    Numbers cross the wire as doubles (protobuf Struct); the provider turns them back into integers,
    and so does this, or a manifest would say `containerPort: 5001.0`.
    """
    if isinstance(value, dict):
        if value.get(SECRET_SIG) == SECRET_VALUE:
            return unwrap(value.get("value"))[0], True
        secret, plain = False, {}
        for k, v in value.items():
            plain[k], inner = unwrap(v)
            secret |= inner
        return plain, secret
    if isinstance(value, list):
        items = [unwrap(v) for v in value]
        return [v for v, _ in items], any(s for _, s in items)
    if isinstance(value, float) and value.is_integer():
        return int(value), False
    return value, False


def is_manifest(resource: _Registered) -> bool:
    """A registration that is a Kubernetes object (not a provider, Helm release, component or patch)."""
    return (resource.type.startswith("kubernetes:") and not resource.type.endswith("Patch")
            and "apiVersion" in resource.inputs and "kind" in resource.inputs)


def is_cloud_resource(resource: _Registered) -> bool:
    """Everything else the program creates for real: Azure resources, images, random values."""
    package = resource.type.split(":", 1)[0]
    return package not in ("kubernetes", "pulumi", COMPONENT_PACKAGE)


def to_manifest(resource: _Registered) -> Manifest:
    fields, secret = {}, []
    for key, value in resource.inputs.items():
        if key.startswith("__") or key in _SERVER_FIELDS:  # provider bookkeeping (__inputs, ...) and status
            continue
        fields[key], is_secret = unwrap(value)
        if is_secret:
            secret.append(key)
    metadata = dict(fields.get("metadata") or {})
    for key in _SERVER_METADATA:
        metadata.pop(key, None)
    # With no metadata.name the provider names the object after the resource plus a random suffix;
    # there is no provider here, so the resource name stands in (the suffix is random anyway).
    metadata.setdefault("name", resource.name)
    fields["metadata"] = metadata
    # apiVersion and kind first, as people write them.
    ordered = {"apiVersion": fields.pop("apiVersion"), "kind": fields.pop("kind"), "metadata": fields.pop("metadata")}
    return Manifest(resource.name, resource.type, {**ordered, **fields}, tuple(secret))


def manifests(run: _Run) -> list[Manifest]:
    return [to_manifest(r) for r in run.resources if is_manifest(r)]


def redacted_inputs(inputs: dict, secret_outputs: Iterable[str] = ()) -> dict:
    """Inputs with every secret value replaced (for the JSON files beside the manifests): those marked
    secret, and the outputs the resource declares secret (a generated private key, say), which the
    provider computes and the engine stores marked but which a mock's state holds plain."""
    out, declared = {}, set(secret_outputs)
    for key, value in inputs.items():
        plain, secret = unwrap(value)
        out[key] = REDACTED_FIELD if secret or key in declared else plain
    return out


def file_name(manifest: Manifest) -> str:
    """`<kind>.<namespace>.<name>.yaml` (no namespace part for cluster-scoped or unset), like checkov's ids."""
    parts = [manifest.kind.lower(), manifest.namespace, manifest.name]
    return ".".join(p for p in parts if p) + ".yaml"


@dataclass
class Written:
    files: list[Path]  # one manifest per file, under <out_dir>/k8s/
    azure: Path  # the cloud resources, as JSON
    releases: Path  # Helm releases (not manifests: the chart renders them at deploy time)
    misplaced_secrets: list[str] = field(default_factory=list)  # see Manifest.misplaced_secrets


def write_manifests(run: _Run, out_dir: str | Path) -> Written:
    """Write <out_dir>/k8s/*.yaml, <out_dir>/azure.json and <out_dir>/helm-releases.json, replacing old ones."""
    out = Path(out_dir)
    k8s_dir = out / "k8s"
    k8s_dir.mkdir(parents=True, exist_ok=True)
    for stale in k8s_dir.glob("*.yaml"):  # a removed object must not linger from an earlier run
        stale.unlink()
    found = manifests(run)
    by_file: dict[str, Manifest] = {}
    for m in found:
        name = file_name(m)
        if name in by_file:  # two resources would manage one object: it cannot deploy
            raise ValueError(f"{m.kind} {m.namespace or ''}/{m.name} is registered twice: "
                             f"{by_file[name].resource} and {m.resource}")
        by_file[name] = m
    files = []
    for name, m in sorted(by_file.items()):
        path = k8s_dir / name
        path.write_text(yaml.safe_dump(m.for_disk(), sort_keys=False))
        files.append(path)
    azure = out / "azure.json"
    azure.write_text(_json(_records(r for r in run.resources if is_cloud_resource(r))))
    releases = out / "helm-releases.json"
    releases.write_text(_json(_records(r for r in run.resources if r.type == HELM_RELEASE)))
    return Written(files, azure, releases, [s for m in found for s in m.misplaced_secrets])


def _records(resources: Iterable[_Registered]) -> list[dict]:
    # `secret_outputs`: the registration's additionalSecretOutputs, where the recorder keeps them.
    return [{"type": r.type, "name": r.name, "parent": r.parent,
             "inputs": redacted_inputs(r.inputs, getattr(r, "secret_outputs", ()))} for r in resources]


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, default=_asset) + "\n"


def _asset(value: Any) -> dict:
    """Uploads (pulumi.FileAsset, StringAsset, FileArchive, ...) by what they point at, not their bytes."""
    for attribute in ("path", "uri", "text", "assets"):
        if hasattr(value, attribute):
            return {type(value).__name__: getattr(value, attribute)}
    raise TypeError(f"cannot write {type(value).__name__} as JSON")

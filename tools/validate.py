"""Schema validation of the written manifests with kubernetes-validate, strictly, for the stack's version.

Strict mode rejects any field the Kubernetes OpenAPI schema does not define, so a misspelt or misplaced
key fails here instead of being dropped (client-side apply) or refused at deploy time (server-side).
This calls the same function the `kubernetes-validate --strict -k <version>` command does, in-process,
after deciding which objects it has a schema for.

Objects of API groups Kubernetes does not serve itself (CustomResources such as cert-manager's) have no
schema in kubernetes-validate. They are never passed silently: a kind listed in NO_SCHEMA is reported as
"schema unknown" (their CRDs come from a pinned Helm chart, which validates them at apply time), and
any other is an error until someone lists it here with the reason.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml
from kubernetes_validate import utils as kv

# kubernetes-validate 1.37.0 carries schemas for 1.25-1.37. AKS makes a minor generally available about
# three months after upstream: 1.36 (upstream April 2026) is its newest GA minor, 1.37 (upstream August
# 2026) preview at most. Used when the stack does not pin cluster.kubernetesVersion.
DEFAULT_KUBERNETES_VERSION = "1.36"

# API groups Kubernetes itself serves (besides every *.k8s.io group). kubernetes-validate looks schemas up
# by the group's first label only, so a CustomResource of e.g. networking.example.com would otherwise be
# checked against the built-in networking.k8s.io schema of the same kind.
BUILTIN_GROUPS = frozenset({"", "apps", "batch", "autoscaling", "policy"})

# (apiVersion, kind) without a schema here, accepted as "schema unknown", each with why.
NO_SCHEMA: Mapping[tuple[str, str], str] = {
    # cert-manager's CRDs ship in its Helm release; the API server validates these objects against them.
    ("cert-manager.io/v1", "ClusterIssuer"): "cert-manager CRD (Helm release)",
    ("cert-manager.io/v1", "Issuer"): "cert-manager CRD (Helm release)",
    ("cert-manager.io/v1", "Certificate"): "cert-manager CRD (Helm release)",
}


@dataclass
class Report:
    version: str
    errors: dict[str, list[str]] = field(default_factory=dict)  # file name -> problems
    schema_unknown: dict[str, str] = field(default_factory=dict)  # file name -> "apiVersion kind"
    checked: int = 0  # objects validated against a schema

    @property
    def ok(self) -> bool:
        return not self.errors


def kubernetes_version(config: Mapping[str, Any]) -> str:
    """The version the stack targets: `cluster.kubernetesVersion` (stack config sections), else the default."""
    return str((config.get("cluster") or {}).get("kubernetesVersion") or DEFAULT_KUBERNETES_VERSION)


def is_builtin(api_version: str) -> bool:
    group = api_version.rpartition("/")[0]
    return group in BUILTIN_GROUPS or group.endswith(".k8s.io")


def validate_object(obj: Any, version: str) -> tuple[list[str], str | None]:
    """(problems, "schema unknown" note) for one object."""
    if not isinstance(obj, dict) or not obj.get("apiVersion") or not obj.get("kind"):
        return ["not a Kubernetes object (apiVersion and kind are required)"], None
    api_version, kind = obj["apiVersion"], obj["kind"]
    if not is_builtin(api_version):
        if (api_version, kind) in NO_SCHEMA:
            return [], f"{api_version} {kind}"
        return [f"no schema for {api_version} {kind}; list it in tools/validate.py NO_SCHEMA with the reason "
                "if it is expected"], None
    try:
        kv.validate(obj, version, strict=True)
    except kv.ValidationError as err:
        path = ".".join(str(p) for p in err.path) or "(top level)"
        return [f"{path}: {err.message}"], None
    except kv.SchemaNotFoundError as err:  # a built-in group but no such kind/version in this Kubernetes
        return [err.message], None
    return [], None


def validate_files(files: list[Path], version: str) -> Report:
    _check_supported(version)
    report = Report(version)
    for path in files:
        for obj in yaml.safe_load_all(path.read_text()):
            if obj is None:
                continue
            problems, unknown = validate_object(obj, version)
            if problems:
                report.errors.setdefault(path.name, []).extend(problems)
            elif unknown:
                report.schema_unknown[path.name] = unknown
            else:
                report.checked += 1
    return report


def validate_dir(directory: Path, version: str) -> Report:
    return validate_files(sorted(Path(directory).glob("*.yaml")), version)


def _check_supported(version: str) -> None:
    wanted = kv.major_minor(version.lstrip("v"))
    supported = [kv.major_minor(v) for v in kv.all_versions()]
    if wanted not in supported:
        raise ValueError(f"kubernetes-validate {kv.__version__} has no schemas for Kubernetes {wanted} "
                         f"(it has {supported[0]}-{supported[-1]}); bump it in requirements.txt")


def main(argv: list[str]) -> int:
    """`python -m tools.validate [-k VERSION] DIR`: print problems, exit 1 on any."""
    version = DEFAULT_KUBERNETES_VERSION
    if len(argv) >= 2 and argv[0] == "-k":
        version, argv = argv[1], argv[2:]
    report = validate_dir(Path(argv[0]), version)
    for name, problems in sorted(report.errors.items()):
        for problem in problems:
            print(f"ERROR {name}: {problem}")
    for name, what in sorted(report.schema_unknown.items()):
        print(f"SCHEMA UNKNOWN {name}: {what}")
    print(f"{report.checked} valid against Kubernetes {version}, {len(report.schema_unknown)} schema unknown, "
          f"{len(report.errors)} with errors")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

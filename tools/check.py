"""The offline pull-request check: `python -m tools.check --stack dev` (or `make check STACK=dev`).

No cloud, no Pulumi CLI. It runs the program under Pulumi's mocks with the stack file's config
(tests/pulumi_mocks.py: real SDK objects and argument checks, canned Azure answers), writes the Kubernetes
objects to build/<stack>/k8s/ and the Azure resources to build/<stack>/azure.json (tools/manifests.py),
sends every registration through the CrossGuard pack as a preview would (tools/analyzer.py), validates the
manifests strictly with kubernetes-validate (tools/validate.py) and scans them with checkov
(tools/scan.py, allowed failures in tools/checkov-skips.yaml). It prints one report and exits 1 on any
mandatory policy violation, schema error, checkov failure outside the skip file, or secret that would end
up in a written file; 2 when the program itself cannot run (a config error, say).

Secrets: `secure:` values in the stack file cannot be decrypted without the Pulumi CLI; each becomes a
placeholder in a section marked secret, as Pulumi would hold it. The written files are redacted by
tools/manifests.py and checked here for every value the run marked secret; everything printed passes
through the same filter.
"""
from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [p for p in (str(ROOT), str(ROOT / "tests")) if p not in sys.path]  # pulumi_mocks: with the tests

from pulumi_mocks import run_program  # noqa: E402
from tools.analyzer import Diagnostic, PolicyInfo, PolicyPack, from_registrations  # noqa: E402
from tools.manifests import SECRET_SIG, SECRET_VALUE, is_cloud_resource, write_manifests  # noqa: E402
from tools.scan import SKIPS_FILE, ScanResult, scan  # noqa: E402
from tools.validate import Report, kubernetes_version, validate_dir  # noqa: E402

PROJECT = "aks-serving"
# Stands in for a `secure:` value (it cannot be decrypted offline); its section is marked secret.
SECURE_PLACEHOLDER = "offline-check: secure value not decrypted"
# Shorter secret strings ("true", a port) would match ordinary text by accident; generated keys are 32+.
MIN_SECRET_LENGTH = 8
SHOWN_SECRET = "[secret]"
CREDENTIAL_KEY = re.compile(r"password|secret|token|key|credential|connectionstring", re.IGNORECASE)


# ---- the stack file ------------------------------------------------------------------------------------


def stack_file(stack: str) -> Path:
    return ROOT / f"Pulumi.{stack}.yaml"


def read_stack_file(path: Path) -> tuple[dict, tuple[str, ...]]:
    """The project's config sections (without the `aks-serving:` prefix) and the sections holding a
    `secure:` value, each of which is replaced by SECURE_PLACEHOLDER."""
    document = yaml.safe_load(Path(path).read_text()) or {}
    config, secret = {}, set()
    for key, value in (document.get("config") or {}).items():
        if key.startswith(f"{PROJECT}:"):
            section = key.split(":", 1)[1]
            config[section], has_secure = _placeholders(value)
            if has_secure:
                secret.add(section)
    return config, tuple(sorted(secret))


def _placeholders(value: Any) -> tuple[Any, bool]:
    if isinstance(value, dict):
        if set(value) == {"secure"}:
            return SECURE_PLACEHOLDER, True
        items = {k: _placeholders(v) for k, v in value.items()}
        return {k: v for k, (v, _) in items.items()}, any(s for _, s in items.values())
    if isinstance(value, list):
        items = [_placeholders(v) for v in value]
        return [v for v, _ in items], any(s for _, s in items)
    return value, False


# ---- secrets ---------------------------------------------------------------------------------------------


def secret_values(run: Any) -> set[str]:
    """Every string the run holds as a secret: values marked secret in any registration, outputs a resource
    declares secret (a generated password or key, plain in the mock's state) and secret stack exports.

    Pulumi marks a whole top-level property secret when any value inside it is (a registry's server beside
    its password), so inside a marked structure a string counts when its key names a credential, or when it
    is a Secret object's value; a marked string on its own always counts."""
    found: set[str] = set()
    for resource in run.resources:
        secret_object = resource.type == "kubernetes:core/v1:Secret"
        for key, value in resource.inputs.items():
            declared = key in getattr(resource, "secret_outputs", ())
            everything = declared or (secret_object and key in ("data", "stringData"))
            _strings(value, found, key, marked=declared, everything=everything)
    for name in run.secret_exports:
        _strings(run.exports.get(name), found, name, marked=True, everything=True)
    return {s for s in found if len(s) >= MIN_SECRET_LENGTH} | {SECURE_PLACEHOLDER}


def _strings(value: Any, found: set[str], key: str, marked: bool, everything: bool) -> None:
    if isinstance(value, dict):
        if value.get(SECRET_SIG) == SECRET_VALUE:
            inner = value.get("value")
            if isinstance(inner, str):
                found.add(inner)
            else:
                _strings(inner, found, key, True, everything)
            return
        for k, item in value.items():
            _strings(item, found, str(k), marked, everything)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _strings(item, found, key, marked, everything)
    elif isinstance(value, str) and marked and (everything or CREDENTIAL_KEY.search(key)):
        found.add(value)


class Redactor:
    def __init__(self, secrets: Iterable[str]):
        self.secrets = sorted(set(secrets), key=len, reverse=True)  # the longest first: one may contain another

    def __call__(self, text: str) -> str:
        for value in self.secrets:
            text = text.replace(value, SHOWN_SECRET)
        return text

    def leaks(self, files: Iterable[Path]) -> list[Path]:
        return [path for path in files if any(value in path.read_text() for value in self.secrets)]


# ---- the check ------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    stack: str
    stack_file: Path
    out_dir: Path
    resources: Counter
    policies: list[PolicyInfo]
    diagnostics: list[Diagnostic]
    validation: Report
    scan: ScanResult
    warnings: list[str] = field(default_factory=list)
    manifests: int = 0
    azure_resources: int = 0
    misplaced_secrets: list[str] = field(default_factory=list)
    leaked_files: list[Path] = field(default_factory=list)

    @property
    def mandatory(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.mandatory]

    @property
    def problems(self) -> list[str]:
        """Why the check fails, one phrase each; empty when it passes."""
        counts = [(len(self.mandatory), "mandatory policy violation", "mandatory policy violations"),
                  (sum(len(v) for v in self.validation.errors.values()), "schema error", "schema errors"),
                  (len(self.scan.failures), "checkov failure", "checkov failures"),
                  (len(self.scan.parsing_errors), "checkov parsing error", "checkov parsing errors"),
                  (len(self.misplaced_secrets), "secret outside a Secret", "secrets outside a Secret"),
                  (len(self.leaked_files), "file with a secret value", "files with a secret value")]
        return [f"{n} {one if n == 1 else many}" for n, one, many in counts if n]


def check(stack: str, path: Path, out_dir: Path) -> tuple[Outcome, Redactor]:
    config, secret_sections = read_stack_file(path)
    run = run_program(config, stack=stack, secret_sections=secret_sections)
    redact = Redactor(secret_values(run))
    written = write_manifests(run, out_dir)
    leaked = redact.leaks([*written.files, written.azure, written.releases])
    for leaking in leaked:  # never leave a secret on disk, even when the check fails
        leaking.unlink()
    with PolicyPack(stack=stack) as pack:
        diagnostics = pack.analyze_all(from_registrations(run.resources, stack))
        policies = list(pack.policies)
    outcome = Outcome(
        stack=stack, stack_file=path, out_dir=out_dir, resources=Counter(r.type for r in run.resources),
        policies=policies, diagnostics=diagnostics,
        validation=validate_dir(out_dir / "k8s", kubernetes_version(config)), scan=scan(out_dir / "k8s"),
        warnings=list(run.warnings), manifests=len(written.files),
        azure_resources=sum(1 for r in run.resources if is_cloud_resource(r)),
        misplaced_secrets=list(written.misplaced_secrets), leaked_files=leaked)
    return outcome, redact


# ---- the report -----------------------------------------------------------------------------------------


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], numeric: Sequence[int] = ()) -> list[str]:
    """A plain-text table; columns in `numeric` are right-aligned."""
    cells = [[str(c) for c in row] for row in [headers, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if i in numeric else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths)))

    return [line(cells[0]).rstrip(), "  ".join("-" * w for w in widths), *(line(r).rstrip() for r in cells[1:])]


def report(outcome: Outcome) -> list[str]:
    o = outcome
    lines = [f"offline check of stack {o.stack} ({_shown(o.stack_file)}): the program under Pulumi's mocks, "
             "no cloud and no Pulumi CLI",
             f"wrote {o.manifests} Kubernetes manifests to {_shown(o.out_dir / 'k8s')}/ and {o.azure_resources} "
             f"other resources (Azure, images, random values) to {_shown(o.out_dir / 'azure.json')}", ""]

    rows = sorted(o.resources.items())
    lines += table(["resource type", "count"], [*rows, ("total", sum(o.resources.values()))], numeric=[1])

    found: dict[str, Counter] = {}
    for d in o.diagnostics:
        found.setdefault(d.policy, Counter())[d.level] += 1
    names = [p.name for p in o.policies] + sorted(set(found) - {p.name for p in o.policies})
    levels = {p.name: p.level for p in o.policies}
    lines += [""] + table(
        ["policy", "level", "mandatory", "advisory"],
        [(n, levels.get(n, "-"), found.get(n, Counter())["mandatory"], found.get(n, Counter())["advisory"])
         for n in names], numeric=[2, 3])
    for d in sorted(o.diagnostics, key=lambda d: (not d.mandatory, d.policy, d.resource)):
        message = d.message.strip().replace("\n", "\n    ")
        lines += f"  {d.level.upper()} {d.policy} [{d.resource or 'stack'}]: {message}".split("\n")

    v = o.validation
    lines += ["", f"kubernetes-validate --strict, Kubernetes {v.version}: {v.checked} valid, "
                  f"{len(v.schema_unknown)} schema unknown, {sum(len(p) for p in v.errors.values())} schema errors"]
    lines += [f"  SCHEMA ERROR {name}: {problem}"
              for name, problems in sorted(v.errors.items()) for problem in problems]
    lines += [f"  schema unknown {name}: {what}" for name, what in sorted(v.schema_unknown.items())]

    s = o.scan
    lines += ["", f"checkov: {s.resource_count} resources, {s.passed} checks passed, {len(s.failures)} failed, "
                  f"{len(s.set_aside)} set aside by {_shown(SKIPS_FILE)}"]
    lines += [f"  FAILED {f}" for f in sorted(s.failures, key=str)]
    lines += [f"  PARSING ERROR {p}" for p in s.parsing_errors]

    if o.misplaced_secrets or o.leaked_files:
        lines += ["", "secrets"]
        lines += [f"  SECRET OUTSIDE A SECRET {m}: only a Secret's data may hold a secret; reference the Secret"
                  for m in o.misplaced_secrets]
        lines += [f"  SECRET WRITTEN {_shown(p)}: removed; a secret value must never reach a written file"
                  for p in o.leaked_files]
    if o.warnings:
        lines += ["", "program warnings"] + [f"  {w}" for w in o.warnings]

    problems = o.problems
    lines += ["", f"check {'FAILED: ' + ', '.join(problems) if problems else 'passed'} (stack {o.stack})"]
    return lines


def _shown(path: Path) -> str:
    path = Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


# ---- command line ---------------------------------------------------------------------------------------


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", required=True, help="the stack name (dev, prod)")
    parser.add_argument("--stack-file", type=Path, help="its config file (default: Pulumi.<stack>.yaml)")
    parser.add_argument("--out", type=Path, help="where to write the manifests (default: build/<stack>)")
    args = parser.parse_args(argv)
    path = args.stack_file or stack_file(args.stack)
    if not path.is_file():
        parser.error(f"no stack file {path}")
    out_dir = args.out or ROOT / "build" / args.stack
    try:
        outcome, redact = check(args.stack, path, out_dir)
    except Exception as err:  # noqa: BLE001 - the program, the pack or a scanner could not run: say which
        print(f"offline check of stack {args.stack} could not run: {type(err).__name__}: {err}", file=sys.stderr)
        return 2
    for line in report(outcome):
        print(redact(line))
    return 1 if outcome.problems else 0


if __name__ == "__main__":
    sys.exit(main())

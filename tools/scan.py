"""checkov's Kubernetes checks over the written manifests, minus the skips in tools/checkov-skips.yaml.

checkov runs from .venv-checkov (it pins packaging<24; the program needs >=26), offline: no Prisma
Cloud download and no guideline lookup. A skip applies everywhere (passed to --skip-check) unless it
names the resources it is for (checkov ids like `Deployment.<namespace>.<name>`, shell patterns), in
which case the check still runs and only those resources' failures are set aside, so one justified
exception never hides the same gap elsewhere.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SKIPS_FILE = ROOT / "tools" / "checkov-skips.yaml"
CHECKOV = os.environ.get("CHECKOV", str(ROOT / ".venv-checkov" / "bin" / "checkov"))
_CHECK_ID = re.compile(r"^CKV2?_K8S_\d+$")


@dataclass(frozen=True)
class Skip:
    id: str
    reason: str
    resources: tuple[str, ...] = ()  # empty: the check is skipped for every resource

    def covers(self, failure: "Failure") -> bool:
        return failure.check_id == self.id and (not self.resources or
                                                any(fnmatchcase(failure.resource, p) for p in self.resources))


@dataclass(frozen=True)
class Failure:
    check_id: str
    check_name: str
    file: str
    resource: str

    def __str__(self) -> str:
        return f"{self.check_id} {self.resource} ({self.file.lstrip('/')}): {self.check_name}"


@dataclass
class ScanResult:
    failures: list[Failure]  # failed and not covered by a skip
    set_aside: list[Failure] = field(default_factory=list)  # failed, covered by a resource-scoped skip
    passed: int = 0
    resource_count: int = 0
    parsing_errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures and not self.parsing_errors


def parse_skips(text: str) -> list[Skip]:
    """The skip file: a list of {id, reason, resources?}; every problem is reported at once."""
    entries = yaml.safe_load(text) or []
    if not isinstance(entries, list):
        raise ValueError("checkov skips: expected a list of {id, reason, resources?}")
    skips, problems, seen = [], [], set()
    for i, entry in enumerate(entries):
        where = f"entry {i + 1}"
        if not isinstance(entry, dict):
            problems.append(f"{where}: expected a mapping with id and reason")
            continue
        check_id, reason, resources = entry.get("id"), entry.get("reason"), entry.get("resources", [])
        if unknown := set(entry) - {"id", "reason", "resources"}:
            problems.append(f"{where}: unknown keys {sorted(unknown)}")
        if not isinstance(check_id, str) or not _CHECK_ID.match(check_id):
            problems.append(f"{where}: id {check_id!r} is not a checkov Kubernetes check id (CKV_K8S_n or CKV2_K8S_n)")
        elif check_id in seen:
            problems.append(f"{where}: {check_id} is listed twice; give one entry all its resources")
        seen.add(check_id)
        if not isinstance(reason, str) or not reason.strip():
            problems.append(f"{where}: {check_id} needs a reason")
        if not isinstance(resources, list) or not all(isinstance(r, str) and r for r in resources):
            problems.append(f"{where}: resources must be a list of checkov resource ids (Kind.namespace.name)")
            resources = []
        skips.append(Skip(str(check_id), str(reason).strip(), tuple(resources)))
    if problems:
        raise ValueError("checkov skips: " + "; ".join(problems))
    return skips


def load_skips(path: Path = SKIPS_FILE) -> list[Skip]:
    return parse_skips(Path(path).read_text())


def command(directory: Path, skips: list[Skip]) -> list[str]:
    cmd = [CHECKOV, "--framework", "kubernetes", "-d", str(directory), "--output", "json", "--quiet",
           "--skip-download"]
    if everywhere := [s.id for s in skips if not s.resources]:
        cmd += ["--skip-check", ",".join(everywhere)]
    return cmd


def parse_report(text: str, skips: list[Skip] = ()) -> ScanResult:
    """checkov's JSON: one report, a list of reports, or (nothing scanned) just a summary."""
    document = json.loads(text)
    reports = document if isinstance(document, list) else [document]
    result = ScanResult([])
    for report in reports:
        summary = report.get("summary", report)
        result.passed += summary.get("passed", 0)
        result.resource_count += summary.get("resource_count", 0)
        results = report.get("results") or {}
        result.parsing_errors += results.get("parsing_errors", [])
        for check in results.get("failed_checks", []):
            failure = Failure(check["check_id"], check.get("check_name", ""), check.get("file_path", ""),
                              check.get("resource", ""))
            (result.set_aside if any(s.covers(failure) for s in skips) else result.failures).append(failure)
    return result


def scan(directory: Path, skips: list[Skip] | None = None) -> ScanResult:
    skips = load_skips() if skips is None else skips
    if not Path(CHECKOV).exists():
        raise FileNotFoundError(f"{CHECKOV} is missing; `make venv` builds .venv-checkov")
    # No call home: BC_SKIP_MAPPING skips the guideline download --skip-download does not cover.
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE"}
    done = subprocess.run(command(directory, skips), capture_output=True, text=True, env=env, check=False)
    # checkov exits 1 when a check fails; anything else, or no JSON, is checkov itself failing.
    if done.returncode not in (0, 1) or not done.stdout.strip():
        raise RuntimeError(f"checkov exited {done.returncode}: {done.stderr.strip()[-2000:]}")
    return parse_report(done.stdout, skips)


def main(argv: list[str]) -> int:
    """`python -m tools.scan DIR`: print failures, exit 1 on any."""
    result = scan(Path(argv[0]))
    for failure in result.failures:
        print(f"FAILED {failure}")
    for failure in result.set_aside:
        print(f"skipped {failure}")
    for path in result.parsing_errors:
        print(f"PARSE ERROR {path}")
    print(f"checkov: {result.resource_count} resources, {result.passed} passed, {len(result.failures)} failed, "
          f"{len(result.set_aside)} skipped for named resources")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

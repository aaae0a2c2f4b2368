"""Keep numpy on the C ABI that a pinned compiled package was built for, as conda does.

A wheel built before numpy 2.0 was built against numpy 1's C API and fails to import under numpy 2
("numpy.dtype size changed" / "compiled using NumPy 1.x"). conda-forge's builds record that (a
`numpy <2` run-export), so `conda env create` never pairs them; pip only sees `numpy>=1.17` in the
wheel's metadata and takes the newest. A v1 conda file pinning `scikit-learn=1.2.2` therefore got a
working environment from conda and a broken one from pip. Locally we restore conda's rule: when the file
pins (exactly or by prefix) a release that ships compiled wheels, depends on numpy and was published
before numpy 2.0, pip is constrained to `numpy<2`, unless the file pins numpy itself.

Release dates and dependencies come from the package index's JSON simple API (PEP 691, upload times from
PEP 700, metadata from PEP 658), the API pip itself reads, and are cached per release.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import requests
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from components.conda import CondaFile

# numpy 2.0.0's release: wheels uploaded before it were built against numpy 1's C ABI.
NUMPY_2 = datetime(2024, 6, 16, tzinfo=timezone.utc)
_ACCEPT = "application/vnd.pypi.simple.v1+json"


@dataclass(frozen=True)
class Release:
    name: str
    version: str
    uploaded: datetime
    compiled: bool  # ships platform wheels (not only pure-Python ones)
    needs_numpy: bool


def pins(conda: CondaFile) -> list[tuple[str, str]]:
    """(project, version or prefix) for every exact or prefix pin in the file, both sections."""
    found = [(p.pypi_name, p.version) for p in conda.packages if p.pypi_name and p.op in ("=", "==")]
    for line in conda.pip:
        if line.startswith("-"):
            continue
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            continue
        exact = [s.version for s in requirement.specifier if s.operator == "=="]
        if exact:
            found.append((requirement.name, exact[0]))
    return found


def numpy_constraint(conda: CondaFile, cache_dir: Path) -> tuple[str | None, str | None]:
    """("numpy<2", why) when a pinned release needs numpy 1, else (None, None)."""
    pinned = pins(conda)
    if any(canonicalize_name(name) == "numpy" for name, _ in pinned):
        return None, None  # the file decides numpy itself
    index = Index(cache_dir)
    for name, version in pinned:
        release = index.release(name, version)
        if release and release.compiled and release.needs_numpy and release.uploaded < NUMPY_2:
            return "numpy<2", (f"{release.name} {release.version} ({release.uploaded:%Y-%m-%d}) was built "
                               f"against numpy 1, so numpy stays below 2 as conda would keep it")
    return None, None


class Index:
    """The package index's JSON simple API, with each release's facts cached on disk."""

    def __init__(self, cache_dir: Path, url: str | None = None) -> None:
        self.url = (url or os.environ.get("PIP_INDEX_URL") or "https://pypi.org/simple").rstrip("/")
        self.cache = cache_dir / "releases.json"
        self._facts = json.loads(self.cache.read_text()) if self.cache.exists() else {}

    def release(self, name: str, version: str) -> Release | None:
        """The newest release of `name` that `version` names (`1.2.2`, or a prefix such as `1.2`)."""
        key = f"{canonicalize_name(name)}=={version}"
        if key not in self._facts:
            facts = self._look_up(name, version)
            if facts is None:
                return None
            self._facts[key] = facts
            self.cache.parent.mkdir(parents=True, exist_ok=True)
            self.cache.write_text(json.dumps(self._facts, indent=1, sort_keys=True))
        facts = self._facts[key]
        return Release(facts["name"], facts["version"], datetime.fromisoformat(facts["uploaded"]),
                       facts["compiled"], facts["needs_numpy"])

    def _look_up(self, name: str, version: str) -> dict | None:
        try:
            response = requests.get(f"{self.url}/{canonicalize_name(name)}/", headers={"Accept": _ACCEPT},
                                    timeout=30)
        except requests.RequestException:
            return None
        if response.status_code != 200 or not response.headers.get("content-type", "").startswith(_ACCEPT):
            return None  # no JSON API here: nothing to go on
        files = [f for f in response.json().get("files", []) if f.get("upload-time")]
        chosen = _newest_matching(files, version)
        if chosen is None:
            return None
        release, wheels = chosen
        return {"name": name, "version": str(release),
                "uploaded": min(f["upload-time"] for f in wheels).replace("Z", "+00:00"),
                "compiled": any(not f["filename"].endswith("-none-any.whl") for f in wheels),
                "needs_numpy": self._needs_numpy(wheels)}

    def _needs_numpy(self, wheels: list[dict]) -> bool:
        """Whether the release's metadata asks for numpy; assumed when the index offers no metadata."""
        for wheel in wheels:
            if wheel.get("core-metadata") or wheel.get("data-dist-info-metadata"):
                try:
                    metadata = requests.get(wheel["url"] + ".metadata", timeout=30)
                except requests.RequestException:
                    break
                if metadata.status_code == 200:
                    return any(line.lower().startswith("requires-dist: numpy")
                               for line in metadata.text.splitlines())
        return True


def _newest_matching(files: list[dict], version: str) -> tuple[Version, list[dict]] | None:
    by_version: dict[Version, list[dict]] = {}
    for f in files:
        if not f["filename"].endswith(".whl"):
            continue
        try:
            _, release, _, _ = parse_wheel_filename(f["filename"])
        except (ValueError, InvalidVersion):
            continue
        text = str(release)
        if text == version or text.startswith(version + ".") or release == _version(version):
            by_version.setdefault(release, []).append(f)
    if not by_version:
        return None
    newest = max(by_version)
    return newest, by_version[newest]


def _version(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None

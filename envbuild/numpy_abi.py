"""Keep numpy on the C ABI that a pinned compiled package was built for, as conda does.

    python numpy_abi.py [--cache FILE] NAME==VERSION ...   ->  prints `numpy<2` (or nothing); why on stderr

A wheel built before numpy 2.0 was built against numpy 1's C API and fails to import under numpy 2
("compiled using NumPy 1.x cannot be run in NumPy 2"). conda-forge's builds record that (a `numpy <2`
run-export), so `conda env create` never pairs them; pip only sees `numpy>=1.17` in the wheel's metadata
and takes the newest. A v1 conda file pinning `scikit-learn=1.2.2` therefore got a working environment
from conda and a broken one from pip. This restores conda's rule for whatever pip installs: when a pinned
release (exact, or a prefix such as `1.2`) ships compiled wheels, depends on numpy and was published
before numpy 2.0, pip gets the constraint `numpy<2`. The caller leaves numpy alone when the conda file
pins it.

Release dates and dependencies come from the package index's JSON simple API (PEP 691, upload times from
PEP 700, metadata from PEP 658), the API pip itself reads. Standard library only (see envbuild/__init__).
"""
import json
import os
import re
import sys
import urllib.error
import urllib.request

NUMPY_2 = "2024-06-16"  # numpy 2.0.0's release day: wheels uploaded before it hold numpy 1's C ABI
ACCEPT = "application/vnd.pypi.simple.v1+json"
_WHEEL = re.compile(r"^([^-]+)-([^-]+)(?:-\d[^-]*)?-[^-]+-[^-]+-[^-]+\.whl$")


def canonical(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def release_facts(index, name, version):
    """{"version", "uploaded" (YYYY-MM-DD), "compiled", "needs_numpy"} of the newest release `version`
    names, or None when the index cannot tell."""
    try:
        request = urllib.request.Request("%s/%s/" % (index, canonical(name)), headers={"Accept": ACCEPT})
        with urllib.request.urlopen(request, timeout=30) as response:
            if not response.headers.get("Content-Type", "").startswith(ACCEPT):
                return None  # an index without the JSON API: nothing to go on
            files = json.loads(response.read().decode()).get("files", [])
    except (urllib.error.URLError, OSError, ValueError):
        return None
    by_version = {}
    for f in files:
        match = _WHEEL.match(f.get("filename", ""))
        if match and f.get("upload-time") and (match.group(2) == version or match.group(2).startswith(version + ".")):
            by_version.setdefault(match.group(2), []).append(f)
    if not by_version:
        return None
    newest = max(by_version, key=_version_key)
    wheels = by_version[newest]
    return {"version": newest, "uploaded": min(f["upload-time"] for f in wheels)[:10],
            "compiled": any(not f["filename"].endswith("-none-any.whl") for f in wheels),
            "needs_numpy": _needs_numpy(wheels)}


def _needs_numpy(wheels):
    """Whether the release's metadata asks for numpy; assumed when the index offers no metadata."""
    for wheel in wheels:
        if wheel.get("core-metadata") or wheel.get("data-dist-info-metadata"):
            try:
                with urllib.request.urlopen(wheel["url"] + ".metadata", timeout=30) as response:
                    text = response.read().decode("utf-8", "replace")
            except (urllib.error.URLError, OSError):
                break
            return any(line.lower().startswith("requires-dist: numpy") for line in text.splitlines())
    return True


def _version_key(version):
    return [int(part) if part.isdigit() else -1 for part in re.split(r"[.+-]", version)]


def constraint(pins, index, cache):
    """("numpy<2", why) when a pinned release needs numpy 1's ABI, else (None, None)."""
    for name, version in pins:
        key = "%s==%s" % (canonical(name), version)
        if key not in cache:
            facts = release_facts(index, name, version)
            if facts is None:
                continue
            cache[key] = facts
        facts = cache[key]
        if facts["compiled"] and facts["needs_numpy"] and facts["uploaded"] < NUMPY_2:
            return "numpy<2", ("%s %s (%s) was built against numpy 1, so numpy stays below 2 as conda would "
                               "keep it" % (name, facts["version"], facts["uploaded"]))
    return None, None


def main(argv):
    cache_file = None
    if argv[:1] == ["--cache"]:
        cache_file, argv = argv[1], argv[2:]
    pins = [tuple(arg.split("==", 1)) for arg in argv]
    cache = {}
    if cache_file and os.path.exists(cache_file):
        with open(cache_file) as f:
            cache = json.load(f)
    index = (os.environ.get("PIP_INDEX_URL") or "https://pypi.org/simple").rstrip("/")
    line, why = constraint(pins, index, cache)
    if cache_file:
        with open(cache_file, "w") as f:
            json.dump(cache, f, indent=1, sort_keys=True)
    if line:
        print(line)
        print(why, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

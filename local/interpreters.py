"""The Python a conda file pins, found on this machine: `make run` builds each environment with the
Python its image will have, or says by name that this machine has no such Python before anything starts.

Looked for as `python3.X` on PATH, under pyenv's versions and in /usr/bin and /usr/local/bin; the Python
running `make run` counts too. A pin is matched on its minor version (`python=3.8.5` takes any 3.8): the
patch release changes no package's wheels.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

from packaging.specifiers import InvalidSpecifier, SpecifierSet

from components.conda import python_minor


class NoSuchPython(Exception):
    """The conda file's python pin cannot be met on this machine; the message says what there is."""


def _candidates() -> list[Path]:
    found = [Path(sys.executable)]
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    found += sorted(pyenv.glob("3.*/bin/python3.*"))
    for folder in os.environ.get("PATH", "").split(os.pathsep) + ["/usr/local/bin", "/usr/bin"]:
        found += sorted(Path(folder).glob("python3.*")) if folder else []
    return found


@lru_cache(maxsize=None)
def available() -> dict[str, Path]:
    """minor version ("3.11") -> an interpreter of it; the running one first for its own version."""
    pythons: dict[str, Path] = {}
    for path in _candidates():
        if not re.fullmatch(r"python3(\.\d+)?", path.name) or not os.access(path, os.X_OK):
            continue
        version = _version(path)
        if version is not None and version not in pythons:
            pythons[version] = path
    return pythons


def _version(path: Path) -> str | None:
    if path == Path(sys.executable):
        return f"{sys.version_info.major}.{sys.version_info.minor}"
    try:
        out = subprocess.run([str(path), "-c", "import sys, venv; print('%d.%d' % sys.version_info[:2])"],
                             capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None  # no venv module: not usable


def find_python(pin: str | None, where: str) -> Path:
    """The interpreter for a conda file's python pin (None: the running Python)."""
    if pin is None:
        return Path(sys.executable)
    pythons = available()
    minor = python_minor(pin)
    if minor is not None:
        if minor in pythons:
            return pythons[minor]
    else:
        try:
            wanted = SpecifierSet(pin if pin[:1] in "<>=!~" else f"=={pin}")
        except InvalidSpecifier:
            raise NoSuchPython(f"{where}: cannot read the python pin {pin!r}") from None
        running = f"{sys.version_info.major}.{sys.version_info.minor}"
        matching = [v for v in pythons if wanted.contains(f"{v}.0")]
        if matching:
            best = running if running in matching else max(matching, key=lambda v: tuple(map(int, v.split("."))))
            return pythons[best]
    have = ", ".join(sorted(pythons, key=lambda v: tuple(map(int, v.split("."))))) or "none"
    raise NoSuchPython(f"{where} asks for python {pin}; this machine has python {have}. Install that Python "
                       f"(e.g. `pyenv install {minor or pin}` or your distribution's python{minor or ''}) "
                       f"or change the pin; the image gets it from conda either way.")

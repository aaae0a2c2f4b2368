"""Compile the router's request path to C with mypyc, in place: `python router/build_native.py`.

The request path is the router's own cost per request (bench/README.md): about 40 Python functions per
request, each cheap, none worth removing. Compiled by mypyc, its classes become native classes (fields in a
C struct, methods called through a vtable) and its functions C functions, which runs the same code in a
third fewer instructions. The source stays plain, type-annotated Python; `router/mypy.ini` holds the checks
the compiled modules must pass (mypyc trusts their annotations, and checks them at run time).

Each compiled module's source digest goes into NATIVE_STAMP: `router/__init__.py` refuses to import a
native build older than its source (`make native` rebuilds it). `--clean` removes the build, so the router
runs interpreted.
"""
from __future__ import annotations

import sys
from pathlib import Path

ROUTER = Path(__file__).resolve().parent
ROOT = ROUTER.parent
# Run as a script, this folder comes first on the path, and router/http would stand in for the standard
# library's `http` (which setuptools imports).
sys.path[0] = str(ROOT)

import hashlib  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
NATIVE_STAMP = ROUTER / "native-sources.txt"
BUILD_DIR = ROOT / ".build" / "native"

# The request path: the two connections, the request and its answer, routing and auth, the slot, the
# forwarding in callbacks and coroutines, metrics and the log line. The rest (settings, backends, the
# autoscaler, telemetry) runs once per second or once per process and stays interpreted.
MODULES = [
    "router/http/connection.py", "router/http/readflow.py", "router/http/writeflow.py",
    "router/http/request.py", "router/http/response.py", "router/http/server.py", "router/http/upstream.py",
    "router/scoring.py", "router/callback_forward.py", "router/proxy.py", "router/pool.py",
    "router/auth.py", "router/accesslog.py", "router/metrics.py", "router/clock.py", "router/service.py",
    "router/deadlines.py",
]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def clean() -> None:
    """Remove every compiled module (and the stamp): the router runs interpreted."""
    NATIVE_STAMP.unlink(missing_ok=True)
    for built in [*ROUTER.rglob("*.so"), *ROOT.glob("*__mypyc*.so")]:
        built.unlink()
    shutil.rmtree(BUILD_DIR, ignore_errors=True)


def build() -> None:
    from mypyc.build import mypycify
    from setuptools import setup

    clean()
    os.chdir(ROOT)
    extensions = mypycify(["--config-file", "router/mypy.ini", *MODULES], opt_level="3",
                          target_dir=str(BUILD_DIR))
    setup(name="router-native", ext_modules=extensions,
          script_args=["--quiet", "build_ext", "--inplace", "--build-temp", str(BUILD_DIR / "temp"),
                       "--build-lib", str(BUILD_DIR / "lib")])
    NATIVE_STAMP.write_text("".join(f"{digest(ROOT / m)}  {m}\n" for m in MODULES))


if __name__ == "__main__":
    clean() if sys.argv[1:] == ["--clean"] else build()

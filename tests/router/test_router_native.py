"""The request path's native build (router/build_native.py): what runs, and a stale build refused."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import router
import router.http.server
from router.build_native import MODULES

ROOT = Path(router.__file__).resolve().parent.parent


def test_a_native_build_is_what_runs():
    if not (ROOT / "router" / "native-sources.txt").exists():
        pytest.skip("an interpreted checkout (`python router/build_native.py --clean`); `make test` builds it")
    assert router.http.server.__file__.endswith(".so")
    assert "__dict__" not in dir(router.http.server.HttpConnection)  # a native class, fields in a C struct


def _copy_sources(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "router", tmp_path / "router", ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    return tmp_path


def test_a_native_build_older_than_its_source_is_refused_naming_the_file_and_the_fix(tmp_path):
    root = _copy_sources(tmp_path)
    stamp = root / "router" / "native-sources.txt"
    stamp.write_text("".join(f"{'0' * 64}  {m}\n" if m == "router/http/server.py" else "" for m in MODULES))
    run = subprocess.run([sys.executable, "-c", "import router"], cwd=root, capture_output=True, text=True)
    assert run.returncode != 0
    assert "router/http/server.py changed after the router's native build: run `make native`" in run.stderr


def test_without_a_native_build_the_router_imports_interpreted(tmp_path):
    root = _copy_sources(tmp_path)
    (root / "router" / "native-sources.txt").unlink(missing_ok=True)
    run = subprocess.run([sys.executable, "-c", "import router.http.server as s; print(s.__file__)"], cwd=root,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().endswith("router/http/server.py")

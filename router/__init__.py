"""aks-serving request router: authenticate, route, queue and autoscale scoring requests (azureml-fe's job)."""
import hashlib
from pathlib import Path


def _check_native_build() -> None:
    """A native build of the request path (router/build_native.py) must be of the source beside it: a
    changed source would otherwise silently not run."""
    stamp = Path(__file__).with_name("native-sources.txt")
    if not stamp.exists():
        return  # interpreted
    root = Path(__file__).resolve().parent.parent
    for line in stamp.read_text().splitlines():
        expected, name = line.split()
        if hashlib.sha256((root / name).read_bytes()).hexdigest() != expected:
            raise ImportError(f"{name} changed after the router's native build: run `make native` (or "
                              f"`python router/build_native.py --clean` to run the router interpreted)")


_check_native_build()

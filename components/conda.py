"""A conda environment file as Azure ML v1 read it: python pin, channels, conda packages and the pip section.

One reader for the image build and for `make run`. The image hands the file to `conda env create`
unchanged, so channels, the python pin and conda's own solve are conda's. `make run` has no conda (its
channels are not reachable from every machine), so it takes each conda package from PyPI under its PyPI
name and says which channels it did not use; `requirements_text` is what pip then gets, as a file, so
the pip section's option lines (`--find-links`, `--extra-index-url`, `-e`) mean what they meant to conda,
which also hands pip a requirements file.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

# Conda packages that only manage the environment itself; venv and pip do that job locally.
_TOOLING = {"python", "pip", "setuptools", "wheel", "conda"}
# Conda packages with no PyPI distribution: libraries conda ships for other packages' compiled code,
# which PyPI wheels carry inside themselves.
_NOT_ON_PYPI = {"mkl", "mkl-service", "mkl_fft", "mkl_random", "blas", "libblas", "libcblas", "liblapack",
                "openblas", "libopenblas", "nomkl", "intel-openmp", "cudatoolkit", "cudnn", "nccl", "libgcc",
                "libgcc-ng", "libstdcxx-ng", "libgomp", "openssl", "ca-certificates", "_libgcc_mutex",
                "_openmp_mutex", "libffi", "zlib", "xz", "tk", "readline", "sqlite", "ncurses", "bzip2",
                "ld_impl_linux-64", "libuuid", "libzlib", "tzdata", "git", "nodejs", "libprotobuf"}
# Where conda and PyPI name the same project differently.
_PYPI_NAME = {"pytorch": "torch", "tensorflow-gpu": "tensorflow",  # PyPI's tensorflow-gpu is now an error stub
               "pytorch-cpu": "torch", "py-xgboost": "xgboost", "py-xgboost-cpu": "xgboost",
              "tensorflow-mkl": "tensorflow", "matplotlib-base": "matplotlib", "pyyaml": "PyYAML",
              "msgpack-python": "msgpack",
              "py-opencv": "opencv-python", "libopencv": "opencv-python", "pytables": "tables",
              "onnxruntime-cpu": "onnxruntime"}
# name [op version][=build]: `numpy`, `numpy=1.26`, `numpy==1.26.4`, `numpy>=1.2`, `numpy=1.26.4=py311h...`,
# and the channel-qualified `conda-forge::numpy=1.26`.
_SPEC = re.compile(r"^(?:[\w.\-]+::)?([A-Za-z0-9_.\-]+)\s*(?:(==|=|>=|<=|>|<|!=|~=)\s*([^\s=,]+))?(?:=\S+)?$")


class CondaFileError(ValueError):
    """A conda file that cannot be read; the message names the file and the entry, `rule` the entry alone."""

    def __init__(self, path: Path, rule: str):
        self.rule = rule
        super().__init__(f"{path}: {rule}")


@dataclass(frozen=True)
class CondaPackage:
    name: str
    op: str | None
    version: str | None

    @property
    def pypi_name(self) -> str | None:
        """The PyPI project of the same package, or None for conda-only libraries."""
        if self.name.lower() in _NOT_ON_PYPI:
            return None
        return _PYPI_NAME.get(self.name.lower(), self.name)

    def pip_requirement(self) -> str | None:
        name = self.pypi_name
        if name is None or self.op is None:
            return name
        if self.op == "=":  # conda's `=` is a prefix match: 1.26 means any 1.26.x, 1.26.4 that release
            return f"{name}=={self.version}" if self.version.count(".") >= 2 else f"{name}=={self.version}.*"
        return f"{name}{self.op}{self.version}"


@dataclass(frozen=True)
class CondaFile:
    path: Path
    channels: tuple[str, ...]
    python: str | None  # the python pin as written, e.g. "3.6.2", ">=3.8" or "3.8.*"
    pip_version: str | None  # a conda `pip=20.2.4` pin: the pip that installs the pip section, as conda's did
    packages: tuple[CondaPackage, ...]  # conda packages, python and tooling left out, in order
    pip: tuple[str, ...]  # the pip section's lines as written, options included

    def requirements_text(self) -> str:
        """The requirements file pip gets locally: conda packages by PyPI name, then the pip section."""
        lines = [f"# from {self.path.name}: conda packages, by their PyPI names"]
        lines += [r for p in self.packages if (r := p.pip_requirement())]
        lines += [f"# from {self.path.name}: the pip section, as written", *self.pip]
        return "\n".join(lines) + "\n"

    def pins(self) -> list[str]:
        """`name==version` for each exact or prefix pin (conda's `=1.2` gives `1.2`), both sections; none
        when the file pins numpy itself (its numpy is the user's choice: envbuild/numpy_abi.py)."""
        found = [(p.pypi_name, p.version) for p in self.packages if p.pypi_name and p.op in ("=", "==")]
        for line in self.pip:
            try:
                requirement = Requirement(line)
            except InvalidRequirement:
                continue  # an option line (--find-links ...), a URL or a path
            found += [(requirement.name, s.version) for s in requirement.specifier if s.operator == "=="][:1]
        if any(canonicalize_name(name) == "numpy" for name, _ in found):
            return []
        return [f"{name}=={version.removesuffix('.*')}" for name, version in found]

    def skipped(self) -> list[str]:
        """Conda packages left out locally: conda-only libraries that PyPI wheels carry inside themselves."""
        return [p.name for p in self.packages if p.pypi_name is None]


def read_conda_file(path: Path) -> CondaFile:
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise CondaFileError(path, f"not a YAML conda environment file ({e})") from None
    return conda_document(document, path)


def conda_document(document: Any, path: Path) -> CondaFile:
    """A conda environment already read from YAML (`path`: where it is, or will be, written)."""
    if not isinstance(document, dict):
        raise CondaFileError(path, "a conda environment file is a mapping with `dependencies:`")
    channels = tuple(str(c) for c in document.get("channels") or [])
    python, pip_version, packages, pip = None, None, [], []
    for entry in document.get("dependencies") or []:
        if isinstance(entry, dict):
            if set(entry) != {"pip"}:
                raise CondaFileError(path, f"cannot read the dependency {entry!r} (only `pip:` is a section)")
            pip += [str(line).strip() for line in entry["pip"] or []]
            continue
        match = _SPEC.match(str(entry).strip())
        if match is None:
            raise CondaFileError(path, f"cannot read the dependency {entry!r}")
        name, op, version = match.groups()
        if name.lower() == "python":
            python = version if op in (None, "=", "==") else f"{op}{version}"
        elif name.lower() == "pip" and op in ("=", "==") and version:
            pip_version = version
        elif name.lower() not in _TOOLING:
            packages.append(CondaPackage(name, op, version))
    return CondaFile(path, channels, python, pip_version, tuple(packages), tuple(pip))


def python_minor(pin: str | None) -> str | None:
    """The `3.X` an exact or prefix python pin asks for; None for no pin or a range (`>=3.8`)."""
    if pin is None or not pin[:1].isdigit():
        return None
    parts = pin.removesuffix(".*").split(".")
    return ".".join(parts[:2]) if len(parts) >= 2 else None

"""Build contexts as normalized tar.gz bytes: the same files give the same bytes on any machine.

The context is what the builder (ACR Tasks or a local `docker build -`) sees, so every member gets fixed
metadata: mode 0644, mtime 0, uid/gid 0 with no owner names, in name order, and the gzip header carries no
time or file name. A checkout made under umask 077, or on a day with other mtimes, gives the same context
and so the same layers as one made under umask 022. Stdlib only: the RegistryImage provider process
imports it too.
"""
from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path
from typing import Mapping

FILE_MODE = 0o644


def context_tarball(files: Mapping[str, bytes]) -> bytes:
    """A gzip-compressed tar of `files` (relative posix path -> bytes) with normalized members."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files):
            data = files[name]
            member = tarfile.TarInfo(name)
            member.size, member.mode, member.mtime = len(data), FILE_MODE, 0
            member.uid = member.gid = 0
            member.uname = member.gname = ""
            tar.addfile(member, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), compresslevel=9, mtime=0)


def write_if_changed(path: Path, data: bytes) -> Path:
    """Write `data` to `path` unless it already holds exactly that (a preview rewrites nothing)."""
    if not path.is_file() or path.read_bytes() != data:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(path.suffix + ".partial")
        partial.write_bytes(data)
        partial.replace(path)
    return path

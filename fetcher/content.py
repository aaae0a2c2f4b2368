"""Content hashes of model and code folders: the upload (components/) and the download (fetch) agree on them.

Stdlib only, so `components/` can import it without the fetcher's Azure dependencies.
The hash covers each file's path relative to the folder and its bytes, in path order: renaming a file or
changing a byte gives a new hash, and so a new blob prefix; the same content uploaded twice is one prefix.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Iterable


def folder_files(root: Path) -> list[tuple[str, Path]]:
    """(relative posix path, file) for every file under `root` (or `root` itself when it is a file)."""
    if root.is_file():
        return [(root.name, root)]
    return sorted((p.relative_to(root).as_posix(), p) for p in root.rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts)


def content_hash(files: Iterable[tuple[str, bytes]]) -> str:
    digest = hashlib.sha256()
    for relative, data in sorted(files, key=lambda f: f[0]):
        # Length-prefixed fields: no two different file sets can produce the same byte stream.
        for field in (relative.encode(), data):
            digest.update(len(field).to_bytes(8, "big"))
            digest.update(field)
    return digest.hexdigest()


def folder_hash(root: Path) -> str:
    return content_hash((rel, path.read_bytes()) for rel, path in folder_files(root))

"""Keys and token-signing keys for a local run, made once and kept as 0600 files.

Stack-file secrets cannot be decrypted without the Pulumi CLI, so the local run makes its own; they
are reused across runs so a client's key keeps working after a restart.
"""
from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


def private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def write_private(path: Path, data: bytes) -> None:
    """Write a file only its owner can read; it never exists with wider permissions, even briefly."""
    private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    path.chmod(0o600)


def replace_private(path: Path, data: bytes) -> None:
    """Swap a 0600 file's content in one step (a rename): a reader sees the old content or the new, never
    an empty or half-written file (the router re-reads key files as they change)."""
    fd, temporary = tempfile.mkstemp(dir=private_dir(path.parent), prefix=f".{path.name}.")  # mode 0600
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def ensure_keys(directory: Path) -> tuple[Path, Path]:
    """Primary and secondary keys (v1's get_keys()), as files the router re-reads when they change."""
    files = directory / "primary", directory / "secondary"
    for path in files:
        if not path.exists():
            write_private(path, secrets.token_urlsafe(32).encode())
    return files


def ensure_signing_key(path: Path) -> Path:
    """An RSA key the router signs and checks local tokens with (no cloud identity provider here)."""
    if not path.exists():
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        write_private(path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()))
    return path

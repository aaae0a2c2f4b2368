"""Azurite, Microsoft's Azure Storage emulator (installed into .tools by `make venv`), on 127.0.0.1: the
stand-in for Azure Blob Storage, which cannot be reached from here."""
from __future__ import annotations

import os
import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
AZURITE = os.environ.get("AZURITE_BIN", str(ROOT / ".tools/node_modules/.bin/azurite-blob"))
ACCOUNT, KEY = "devstoreaccount1", "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


@contextmanager
def azurite(workdir: Path):
    """(connection string, blob endpoint) of a blob service that lives as long as the block."""
    assert Path(AZURITE).exists(), f"no azurite at {AZURITE}: `make venv` installs it into .tools"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([AZURITE, "--blobHost", "127.0.0.1", "--blobPort", str(port), "--location", str(workdir),
                             "--silent", "--skipApiVersionCheck"], cwd=workdir,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    endpoint = f"http://127.0.0.1:{port}/{ACCOUNT}"
    deadline = time.monotonic() + 30
    while True:  # bounded wait for the emulator to listen
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "azurite did not start in 30 s"
            time.sleep(0.1)
    try:
        yield f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};BlobEndpoint={endpoint};", endpoint
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()

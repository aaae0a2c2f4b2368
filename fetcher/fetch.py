"""Download content-hash folders from the workspace storage container, and check them against their hash.

Runs as the model pod's init container with the pod's workload identity: azure-identity's
DefaultAzureCredential reads AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_FEDERATED_TOKEN_FILE, which the
workload identity webhook injects. The identity holds only Storage Blob Data Reader on the container, and
no SAS or account key is ever in the pod spec. A replica the router adds months later fetches the same
immutable prefix, so it starts with exactly the files the deployment was made with.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable

from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
from azure.storage.blob import ContainerClient

from fetcher.content import content_hash

log = logging.getLogger("fetcher")
ACCESS_WAIT_SECONDS = 600  # Entra ID propagates a new federated credential in seconds, a role assignment in minutes
MAX_BACKOFF_SECONDS = 30


class FetchError(RuntimeError):
    pass


@dataclass(frozen=True)
class Copy:
    prefix: str  # `<kind>/<sha256>`: the hash is the folder's content hash
    destination: Path

    @classmethod
    def parse(cls, text: str) -> "Copy":
        prefix, sep, destination = text.partition("=")
        if not sep or not prefix or not destination:
            raise ValueError(f"--copy {text!r}: expected PREFIX=DESTINATION")
        return cls(prefix.strip("/"), Path(destination))

    @property
    def expected_hash(self) -> str:
        return PurePosixPath(self.prefix).name


def fetch(container: ContainerClient, copy: Copy) -> int:
    """Download every blob under the prefix to the destination; verify the content hash; return the file count."""
    files: list[tuple[str, bytes]] = []
    for blob in container.list_blobs(name_starts_with=copy.prefix + "/"):
        relative = blob.name[len(copy.prefix) + 1:]
        target = (copy.destination / relative).resolve()
        if copy.destination.resolve() not in target.parents:  # a blob name must not escape the destination
            raise FetchError(f"{blob.name}: resolves outside {copy.destination}")
        data = container.download_blob(blob.name).readall()
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        files.append((relative, data))
    if not files:
        raise FetchError(f"{copy.prefix}: no files in the container; was `pulumi up` interrupted before the upload?")
    if (actual := content_hash(files)) != copy.expected_hash:
        raise FetchError(f"{copy.prefix}: downloaded files hash to {actual}, not {copy.expected_hash}")
    log.info("fetched %d files from %s to %s", len(files), copy.prefix, copy.destination)
    return len(files)


def fetch_when_allowed(container: ContainerClient, copy: Copy, wait_seconds: float = ACCESS_WAIT_SECONDS,
                       sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> int:
    """`fetch`, waiting while the pod's identity is not yet accepted: on a first `pulumi up` the pod can start
    before Entra ID has propagated its federated credential (the token exchange fails) or its read role
    (403). Anything else fails at once; so does access still refused after `wait_seconds`."""
    deadline, delay = clock() + wait_seconds, 2.0
    while True:
        try:
            return fetch(container, copy)
        except (ClientAuthenticationError, HttpResponseError) as err:
            if not _access_not_yet_granted(err):
                raise
            if clock() + delay > deadline:
                raise FetchError(f"{copy.prefix}: access still refused after {wait_seconds:g} s: {_first_line(err)}; "
                                 "check the models identity's federated credential for this namespace and its "
                                 "Storage Blob Data Reader role on the container") from None
            log.warning("access refused (%s); waiting %g s for Entra ID to propagate the identity's credential and "
                        "role", _first_line(err), delay)
            sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF_SECONDS)


def _access_not_yet_granted(err: Exception) -> bool:
    return isinstance(err, ClientAuthenticationError) or getattr(err, "status_code", None) == 403


def _first_line(err: Exception) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:200]

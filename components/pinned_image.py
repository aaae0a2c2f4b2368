"""Third-party images pinned by digest: the tag in the code is read from its registry at deploy time.

The tag says which release is meant; the digest, read on every run (previews included) through the
registry's own HTTP API with an anonymous pull token (components/registry_http.py: no Docker daemon,
no docker provider), is what the pod spec carries, so nodes run exactly the bytes that were resolved
and a re-pushed tag shows up as a diff in the next preview instead of silently changing a running node.
"""
from __future__ import annotations

import pulumi

from components import registry_http


def lookup_public(reference: str) -> str:
    """`sha256:...` of a public `registry/repository:tag` as its registry answers now."""
    server, path = reference.split("/", 1)
    repository, tag = path.rsplit(":", 1)
    found = registry_http.manifest_digest(server, repository, tag)
    if found is None:
        raise registry_http.RegistryError(f"{reference}: the registry has no such tag")
    return found


def digest(reference: str) -> pulumi.Output[str]:
    """`sha256:...` of `registry/repository:tag`."""
    # Looked up by name at call time, so the tests' stand-in registry answers in its place.
    return pulumi.Output.from_input(reference).apply(lambda r: lookup_public(r))


def by_digest(reference: str) -> pulumi.Output[str]:
    repository = reference.rsplit(":", 1)[0]
    return digest(reference).apply(lambda d: f"{repository}@{d}")

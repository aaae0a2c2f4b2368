"""Third-party images pinned by digest: the tag in the code is read from its registry at deploy time.

The tag says which release is meant; the digest, resolved by `docker.get_registry_image` on every run
(previews included), is what the pod spec carries, so nodes run exactly the bytes that were resolved and
a re-pushed tag shows up as a diff in the next preview instead of silently changing a running node.
"""
from __future__ import annotations

from typing import Optional

import pulumi
import pulumi_docker as docker


def digest(reference: str, opts: Optional[pulumi.InvokeOutputOptions] = None) -> pulumi.Output[str]:
    """`sha256:...` of `registry/repository:tag` as its registry answers now."""
    return docker.get_registry_image_output(name=reference, opts=opts).sha256_digest


def by_digest(reference: str, opts: Optional[pulumi.InvokeOutputOptions] = None) -> pulumi.Output[str]:
    repository = reference.rsplit(":", 1)[0]
    return digest(reference, opts).apply(lambda d: f"{repository}@{d}")

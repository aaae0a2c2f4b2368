"""An image built from a folder of this repository (the router, the model fetcher), deployed by digest.

The tag is the folder's content hash (fetcher/content.py `content_hash`, over paths and bytes only), and the
build context is a normalized tarball of the same files (fixed modes, mtimes and owners), so the same
content gives the same tag and the same context whatever the checkout's umask. The image is a
RegistryImage (components/registry_image.py): registered on every run, looked up in the workspace registry
at `pulumi up`, built with `images.builder` only when the registry lacks the tag. `image_ref` is unknown
in a preview of a new tag.
"""
from __future__ import annotations

from fnmatch import fnmatch
from pathlib import Path, PurePosixPath
from typing import Optional

import pulumi

from components.image import RegistryTarget, context_file
from components.registry_image import RegistryImage
from fetcher.content import content_hash, folder_files


# What `make native` leaves in router/ (router/build_native.py): the image builds its own, so neither its tag
# nor its build context depends on whether this checkout ran it (and no host-built binary is uploaded).
LOCAL_BUILD_OUTPUTS = ("*.so", "native-sources.txt")


def folder_context(folder: Path) -> dict[str, bytes]:
    """The build context of `folder`: exactly the files its tag hashes (.dockerignore applies in the build)."""
    return {relative: path.read_bytes() for relative, path in folder_files(folder)
            if not any(fnmatch(PurePosixPath(relative).name, pattern) for pattern in LOCAL_BUILD_OUTPUTS)}


class SourceImage(pulumi.ComponentResource):
    """`<registry>/aks-serving/<name>@sha256:...` built from `folder`."""

    tag: str
    image_ref: pulumi.Output[str]

    def __init__(self, name: str, folder: Path, registry: RegistryTarget, builder: str = "acr-task",
                 opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("aks-serving:index:SourceImage", name, None, opts)
        files = folder_context(folder)  # read once: the tag and the context are of the same bytes
        self.tag = content_hash(files.items())[:32]
        repository = f"aks-serving/{folder.name}"
        image = RegistryImage(
            f"{name}-image", server=registry.login_server, repository=repository, tag=self.tag,
            context_path=context_file(folder.parent, repository, self.tag, files),
            builder=builder, registry_id=registry.id, opts=pulumi.ResourceOptions(parent=self))
        self.image_ref = image.image_ref
        self.register_outputs({"tag": self.tag, "imageRef": self.image_ref})

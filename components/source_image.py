"""An image built from a folder of this repository (the router, the model fetcher), deployed by digest.

The tag is the folder's content hash, so an unchanged folder keeps its tag and pulumi-docker (which
compares the build context's digest) does not rebuild it. The push uses the same Entra-exchanged
registry credential as the environment images: no admin user, no `docker login`, no person present.
Previews do not build, so `image_ref` is unknown there.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import pulumi
import pulumi_docker as docker

from components.image import PLATFORM, RegistryCredential, registry_credential
from fetcher.content import folder_hash


class SourceImage(pulumi.ComponentResource):
    """`<registry>/aks-serving/<name>@sha256:...` built from `folder`."""

    tag: str
    image_ref: pulumi.Output[str]

    def __init__(self, name: str, folder: Path, registry_login_server: pulumi.Input[str],
                 opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("aks-serving:index:SourceImage", name, None, opts)
        self.tag = folder_hash(folder)[:32]
        repository = f"aks-serving/{folder.name}"
        credential = registry_credential(registry_login_server, opts=pulumi.InvokeOutputOptions(parent=self))

        def image_name(cred: RegistryCredential) -> str:
            return f"{cred.server}/{repository}:{self.tag}"

        image = docker.Image(
            f"{name}-build", image_name=pulumi.Output.unsecret(credential.apply(image_name)),
            build=docker.DockerBuildArgs(context=str(folder), dockerfile=str(folder / "Dockerfile"), platform=PLATFORM),
            registry=docker.RegistryArgs(server=pulumi.Output.unsecret(credential.apply(lambda c: c.server)),
                                         username=pulumi.Output.unsecret(credential.apply(lambda c: c.username)),
                                         password=credential.apply(lambda c: c.password)),
            opts=pulumi.ResourceOptions(parent=self))
        self.image_ref = image.repo_digest
        self.register_outputs({"tag": self.tag, "imageRef": self.image_ref})

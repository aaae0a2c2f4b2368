"""RegistryImage: one image tag in the workspace registry, found there or in the global one, else built.

A Pulumi dynamic resource, registered at program time on every run (previews included), so a preview
lists every image it would build and `pulumi up --plan` holds. Its inputs change only when the image's
content does: the registry's login server, the repository and the tag (a content hash), the global
registry searched first and the builder. Nothing in them is a credential, so an unchanged stack previews
with no changes (`diff` compares just those inputs; the context file's path may differ between machines).

`create` (run by `pulumi up` in Pulumi's dynamic provider process, never in a preview) looks the tag up in
the workspace registry, then in the global one, through the registry HTTP API; only when neither has it
does it build and push with `images.builder` (ACR Tasks in the registry, or the local Docker daemon),
then reads the pushed digest the same way. The identity is the deployer's own, obtained inside the
provider process (components/entra_token.py) and exchanged for an ACR refresh token that lives only in
memory: no token reaches the inputs, the outputs or the state. Deleting the resource leaves the pushed
tag in the registry (other stacks may share it), as `docker.Image` did.

Serialization: Pulumi pickles the provider object with dill into the state; its class (and every module
function it calls) is pickled by reference to this module, so the provider process imports
`components.registry_image` from the project directory it starts in. This module and the ones it calls
import only the stdlib, requests and pulumi.dynamic, and register nothing at import.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, Resource, ResourceProvider

from components import acr_tasks, docker_build, entra_token, registry_http

TYPE = "pulumi-python:dynamic/aks-serving:RegistryImage"
COMPARED = ("server", "repository", "tag", "global_server", "builder")


# ---------------------------------------------------------------- in the provider process


def refresh_token(server: str) -> str:
    """An ACR refresh token for `server` from the deployer's Entra tokens (registry audience, then ARM's)."""
    registry = entra_token.shared_token(entra_token.REGISTRY_RESOURCE)
    arm = entra_token.shared_token(entra_token.ARM_RESOURCE)
    return registry_http.exchange_with_retry(server, registry.tenant or arm.tenant, [registry.token, arm.token])


def lookup(server: str, repository: str, tag: str, token: str) -> Optional[str]:
    return registry_http.manifest_digest(server, repository, tag, token)


def build_with_acr_task(props: dict, context: bytes, _token: str) -> None:
    # A current token at each call: the build and its polling may outlast any one token.
    tasks = acr_tasks.AcrTasks(props["registry_id"], lambda: entra_token.shared_token(entra_token.ARM_RESOURCE).token)
    acr_tasks.build(tasks, image_name(props), context)


def build_with_docker(props: dict, context: bytes, token: str) -> None:
    docker_build.build_and_push(image_name(props), props["server"], context, token)


BUILDERS = {"acr-task": build_with_acr_task, "docker": build_with_docker}


def image_name(props: dict) -> str:
    return f"{props['server']}/{props['repository']}:{props['tag']}"


def resolve(props: dict) -> dict:
    """The image's digest: found in the workspace registry, then the global one, else built and pushed."""
    server, repository, tag = props["server"], props["repository"], props["tag"]
    workspace_token = refresh_token(server)
    registries = [("workspace", server, workspace_token)]
    if props.get("global_server"):
        registries.append(("global", props["global_server"], None))
    for source, registry, token in registries:
        digest = lookup(registry, repository, tag, token if token is not None else refresh_token(registry))
        if digest is not None:
            return _found(source, registry, repository, digest)
    BUILDERS[props["builder"]](props, Path(props["context_path"]).read_bytes(), workspace_token)
    digest = lookup(server, repository, tag, workspace_token)
    if digest is None:
        raise registry_http.RegistryError(f"{image_name(props)}: the build pushed it, but the registry has no such tag")
    return _found("built", server, repository, digest)


def _found(source: str, server: str, repository: str, digest: str) -> dict:
    return {"source": source, "digest": digest, "image_ref": f"{server}/{repository}@{digest}"}


class RegistryImageProvider(ResourceProvider):
    serialize_as_secret_always = False  # it captures no secret, so its state stays readable

    def create(self, props):
        return CreateResult(id_=image_name(props), outs={**props, **resolve(props)})

    def diff(self, _id, olds, news):
        changed = [key for key in COMPARED if olds.get(key) != news.get(key)]
        # A new tag is a new image: replace (create the new one, then a no-op delete of the old).
        return DiffResult(changes=bool(changed), replaces=changed, delete_before_replace=False)

    def delete(self, _id, _props):
        pass  # the pushed tag stays in the registry: other stacks may deploy it


# ---------------------------------------------------------------- in the program


class RegistryImage(Resource, module="aks-serving", name="RegistryImage"):
    """`image_ref` is `<server>/<repository>@sha256:...`, unknown in a preview of a new tag."""

    digest: pulumi.Output[str]
    image_ref: pulumi.Output[str]
    source: pulumi.Output[str]  # "workspace", "global" or "built"

    def __init__(self, name: str, *, server: pulumi.Input[str], repository: str, tag: str, context_path: Path,
                 builder: str, registry_id: pulumi.Input[str], global_server: Optional[str] = None,
                 opts: Optional[pulumi.ResourceOptions] = None):
        if builder not in BUILDERS:
            raise ValueError(f"images.builder: {builder!r} is not one of {', '.join(BUILDERS)}")
        super().__init__(RegistryImageProvider(), name, {
            "server": server, "repository": repository, "tag": tag, "global_server": global_server,
            "builder": builder, "registry_id": registry_id, "context_path": str(context_path),
            "digest": None, "image_ref": None, "source": None}, opts)

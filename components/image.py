"""Environment images: one image per environment content, found in a registry or built and pushed once.

The tag is the environment hash (`components.environment.environment_hash`) in the repository
`azureml/azureml_<hash>`, as Azure ML v1 named them. The tag is looked up in the workspace registry, then
in the optional global registry; only when neither has it is the image built (linux/amd64) and pushed to
the workspace registry. Everything downstream gets `image_ref`, `<registry>/<repository>@sha256:...`,
never a tag.

Lookup and build: a RegistryImage (components/registry_image.py), registered at program time with inputs
that change only with the content (login server, repository, tag, global registry, builder), so every
preview lists it and an unchanged stack previews with no changes. At `pulumi up` it looks the tag up
through the registry HTTP API (no Docker daemon, no docker provider), then builds with `images.builder`:
ACR Tasks in the workspace registry (default: as Azure ML v1 built images; no local Docker) or the local
Docker daemon. The build context is a normalized tarball (components/build_context.py): the same content
gives the same bytes whatever the checkout's umask or mtimes.

Auth: the deployer's own Entra identity, obtained inside the provider process and exchanged at the
registry's `/oauth2/exchange` for an ACR refresh token that never leaves memory (no admin user, no
`docker login`, nothing in the state). The identity needs AcrPush on the workspace registry (AcrPull on
a global one), and for ACR Tasks the right to run them on the registry (Contributor has it).
"""
from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pulumi

from components.build_context import context_tarball, write_if_changed
from components.conda import CondaFile, read_conda_file
from components.config import Environment, StackConfig
from components.environment import environment_hash, is_source
from components.registry_image import RegistryImage
from envbuild import SERVER_MINIMUM

PLATFORM = "linux/amd64"
PORT = 5001
APP_ROOT = "/var/azureml-app"
CONDA_ENV = "/opt/azureml/env"
APP_UID = 10001  # >= 10000: never a UID the node itself uses (checkov CKV_K8S_40)
BUILD_DIR = "/tmp/aks-serving-build"
ENVBUILD = Path(__file__).resolve().parents[1] / "envbuild"
ENVBUILD_SCRIPTS = ("numpy_abi.py", "add_server.py", "fit.py", "serve.py")
LAUNCHER = ("serve.py", "add_server.py", "fit.py")  # the image's entry point and what it imports
LAUNCHER_DIR = "/opt/aks-serving"
V1RUNTIME = Path(__file__).resolve().parents[1] / "v1runtime"


def repository_for(env_hash: str) -> str:
    return f"azureml/azureml_{env_hash}"


def render_dockerfile(env: Environment, conda: CondaFile) -> str:
    """The Dockerfile of an environment image; the build context holds the conda file as `conda.yml` and
    the `envbuild/` scripts (`build_context_files`).

    As v1 built it: `conda env create` on the user's file as it is (channels, the python pin, conda's own
    solve, the pip section as conda hands it to pip). Then the same two steps as `make run`'s environments
    (`local.environments`): pip kept on the numpy ABI of pinned compiled packages, and the inference server
    kept if the environment brought one recent enough, else fitted around the installed packages.
    The base image must carry conda (as Azure ML's base images do). The Docker steps run as root after
    the environment exists; the server then runs as a numeric non-root user, so `runAsNonRoot` can be
    checked by the kubelet. The entry script and models are not in the image: ModelService puts them under
    the app root at pod start and sets AZUREML_ENTRY_SCRIPT / AZUREML_MODEL_DIR.
    """
    pins = " ".join(shlex.quote(p) for p in conda.pins())
    lines = [
        f"FROM --platform={PLATFORM} {env.base_image}",
        "USER root",
        f"COPY . {BUILD_DIR}",
        # v1runtime as a wheel, built with the base image's Python: its setuptools cannot run on every
        # Python an environment may pin (3.6), and the wheel is pure Python.
        f"RUN python -m pip wheel --no-cache-dir --no-deps -w {BUILD_DIR}/wheels {BUILD_DIR}/v1runtime",
        f"RUN python {BUILD_DIR}/numpy_abi.py {pins} > {BUILD_DIR}/constraints.txt" if pins
        else f"RUN touch {BUILD_DIR}/constraints.txt",
        f"RUN PIP_CONSTRAINT={BUILD_DIR}/constraints.txt conda env create --prefix {CONDA_ENV} "
        f"--file {BUILD_DIR}/conda.yml && conda clean --all --yes",
        f"ENV PATH={CONDA_ENV}/bin:$PATH AZUREML_CONDA_ENVIRONMENT_PATH={CONDA_ENV} AML_APP_ROOT={APP_ROOT}",
        f"RUN python {BUILD_DIR}/add_server.py {SERVER_MINIMUM} --no-cache-dir",
        # v1's runtime API last (it replaces the PyPI alpha of its name); its blob libraries only where they
        # fit the user's packages: where not, a collector asked to write to blob storage says so at init().
        f"RUN python -m pip install --no-cache-dir --no-deps {BUILD_DIR}/wheels/*.whl "
        f"&& (python {BUILD_DIR}/fit.py \"$(ls {BUILD_DIR}/wheels/*.whl)[blob]\" -- --no-cache-dir "
        f"|| echo 'aks-serving: azure-storage-blob does not fit this environment; blob model data collection is off') "
        f"&& mkdir -p {LAUNCHER_DIR} && cp {' '.join(f'{BUILD_DIR}/{n}' for n in LAUNCHER)} {LAUNCHER_DIR}/ "
        f"&& rm -rf {BUILD_DIR}",
        *env.docker_steps,
        f"RUN (getent group {APP_UID} || groupadd --gid {APP_UID} azureml) "
        f"&& (getent passwd {APP_UID} || useradd --uid {APP_UID} --gid {APP_UID} --no-create-home azureml) "
        f"&& mkdir -p {APP_ROOT} && chown {APP_UID}:{APP_UID} {APP_ROOT}",
        f"WORKDIR {APP_ROOT}",
        f"USER {APP_UID}:{APP_UID}",
        f"EXPOSE {PORT}",
        # azmlinfsrv itself for servers with their own health listener; for older ones it answers health.
        "CMD " + json.dumps(["python", f"{LAUNCHER_DIR}/serve.py"]),
    ]
    return "\n".join(lines) + "\n"


def build_context_files(env: Environment, root: Path) -> dict[str, bytes]:
    """Every file of an environment image's build context, by name."""
    conda_path = root / env.conda_file
    files = {"Dockerfile": render_dockerfile(env, read_conda_file(conda_path)).encode(),
             "conda.yml": conda_path.read_bytes()}
    for script in ENVBUILD_SCRIPTS:
        files[script] = (ENVBUILD / script).read_bytes()
    for path in sorted(V1RUNTIME.rglob("*")):
        if path.is_file() and is_source(path.relative_to(V1RUNTIME)):
            files[f"v1runtime/{path.relative_to(V1RUNTIME).as_posix()}"] = path.read_bytes()
    return files



# ---------------------------------------------------------------- the component


@dataclass(frozen=True)
class RegistryTarget:
    """The workspace registry images go to: its login server and its ARM resource ID (ACR Tasks runs)."""
    login_server: pulumi.Input[str]
    id: pulumi.Input[str]


def global_login_server(global_registry: Optional[str]) -> Optional[str]:
    """`workspace.globalRegistry` as a login server: a bare registry name means `<name>.azurecr.io`."""
    if not global_registry:
        return None
    return global_registry if "." in global_registry else f"{global_registry}.azurecr.io"


def context_file(root: Path, repository: str, tag: str, files: dict[str, bytes]) -> Path:
    """The normalized context tarball of an image, written under `.serving/images/` for the builder."""
    name = repository.replace("/", "_") + ("" if repository.endswith(tag) else f"-{tag}") + ".tar.gz"
    return write_if_changed(root / ".serving" / "images" / name, context_tarball(files))


class EnvironmentImage(pulumi.ComponentResource):
    """The image of one environment content, by digest: found in a registry, or built and pushed."""

    env_hash: str
    repository: str
    tag: str
    image_ref: pulumi.Output[str]  # <registry>/<repository>@sha256:..., unknown in a preview of a new tag
    digest: pulumi.Output[str]  # sha256:...
    source: pulumi.Output[str]  # "workspace", "global" or "built"

    def __init__(self, name: str, env: Environment, root: Path, registry: RegistryTarget,
                 global_registry: Optional[str] = None, builder: str = "acr-task",
                 opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("aks-serving:index:EnvironmentImage", name, None, opts)
        self.env_hash = environment_hash(env, root)
        self.repository = repository_for(self.env_hash)
        self.tag = self.env_hash
        image = RegistryImage(
            f"{name}-image", server=registry.login_server, repository=self.repository, tag=self.tag,
            context_path=context_file(root, self.repository, self.tag, build_context_files(env, root)),
            builder=builder, registry_id=registry.id, global_server=global_login_server(global_registry),
            opts=pulumi.ResourceOptions(parent=self))
        self.source, self.image_ref, self.digest = image.source, image.image_ref, image.digest
        self.register_outputs({"repository": self.repository, "tag": self.tag, "imageRef": self.image_ref,
                               "digest": self.digest, "source": self.source})


# ---------------------------------------------------------------- one image per environment content


def images_for(cfg: StackConfig, root: Path, registry: RegistryTarget,
               opts: Optional[pulumi.ResourceOptions] = None) -> dict[str, EnvironmentImage]:
    """One EnvironmentImage per environment content the deployments use, keyed by environment hash.

    Environments with equal content (whatever they are called) and services sharing an environment get
    the same image; `image_of(cfg, root, images, spec.environment)` finds a deployment's image.
    """
    images: dict[str, EnvironmentImage] = {}
    for _, _, spec in cfg.deployments():
        env_hash = environment_hash(cfg.environments[spec.environment], root)
        if env_hash not in images:
            images[env_hash] = EnvironmentImage(
                f"image-{env_hash[:12]}", cfg.environments[spec.environment], root, registry,
                cfg.workspace.global_registry_login_server, cfg.images.builder, opts=opts)
    return images


def image_of(cfg: StackConfig, root: Path, images: dict[str, EnvironmentImage], environment: str) -> EnvironmentImage:
    return images[environment_hash(cfg.environments[environment], root)]

"""Environment images: one image per environment content, found in a registry or built and pushed once.

The tag is the environment hash (`components.environment.environment_hash`) in the repository
`azureml/azureml_<hash>`, as Azure ML v1 named them. The tag is looked up in the workspace registry, then
in the optional global registry; only when neither has it is the image built (linux/amd64) and pushed to
the workspace registry. Everything downstream gets `image_ref`, `<registry>/<repository>@sha256:...`,
never a tag.

Lookup: `docker.get_registry_image` (pulumi-docker 5.x, the Terraform `docker_registry_image` data source)
reads the tag's manifest digest from the registry API; a tag that is not there fails the invoke with a
404 / MANIFEST_UNKNOWN, which here means "not found". Any other failure (auth, network) is raised: silently
rebuilding on a 401 would hide a broken identity.

Push auth (the registry has no admin user, and `pulumi up` must run with no person present): the Azure
identity Pulumi already deploys with (`azure-native:authorization:getClientToken`, an Entra ID access token)
(registry audience, ARM's as the fallback) is exchanged at the registry's `/oauth2/exchange` endpoint, retried
while a fresh AcrPush applies, for an ACR refresh token, which the registry
accepts as a password for the null-GUID user - the same exchange `az acr login --expose-token` makes
(https://azure.github.io/acr/AAD-OAuth.html). That credential is given to pulumi-docker per registry: to
the lookup through a `docker.Provider`'s `registry_auth`, and to the push through `docker.Image`'s
`registry` argument, so no `docker login` and no ~/.docker/config.json are needed. The identity needs
AcrPush on the workspace registry (AcrPull on a global one); `pulumi up` needs a Docker daemon only when
an image is actually built.

Previews: the registry's login server is unknown until the registry exists, and `docker.Image` does not
build on preview, so `image_ref` and `digest` are unknown in a preview; the build resource is registered
only once the lookup could run (a first preview does not list it).
"""
from __future__ import annotations

import json
import re
import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import pulumi
import pulumi_docker as docker
import requests
from pulumi_azure_native import authorization

from components.conda import CondaFile, read_conda_file
from components.config import Environment, StackConfig
from components.environment import environment_hash, is_source
from envbuild import SERVER_MINIMUM

PLATFORM = "linux/amd64"
PORT = 5001
APP_ROOT = "/var/azureml-app"
CONDA_ENV = "/opt/azureml/env"
APP_UID = 10001  # >= 10000: never a UID the node itself uses (checkov CKV_K8S_40)
NULL_USER = "00000000-0000-0000-0000-000000000000"  # ACR's user for Entra-exchanged refresh tokens
BUILD_DIR = "/tmp/aks-serving-build"
ENVBUILD = Path(__file__).resolve().parents[1] / "envbuild"
ENVBUILD_SCRIPTS = ("numpy_abi.py", "add_server.py", "fit.py", "serve.py")
LAUNCHER = ("serve.py", "add_server.py", "fit.py")  # the image's entry point and what it imports
LAUNCHER_DIR = "/opt/aks-serving"
V1RUNTIME = Path(__file__).resolve().parents[1] / "v1runtime"
# The audience of Entra tokens for Azure Container Registry (the exchange's own; ARM's is the fallback).
REGISTRY_AUDIENCE = "https://containerregistry.azure.net"
EXCHANGE_ATTEMPTS = 6  # 2 + 4 + 8 + 16 + 30 s between rounds: a fresh AcrPush has time to apply
RETRIED_STATUS = {401, 429, 500, 502, 503, 504}
_NOT_FOUND = re.compile(r"404|not found|manifest_unknown|name_unknown", re.IGNORECASE)


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



# ---------------------------------------------------------------- registry access


@dataclass(frozen=True)
class RegistryCredential:
    server: str
    username: str
    password: str  # an ACR refresh token; kept in secret Outputs only


def exchange_aad_token(login_server: str, tenant: str, aad_token: str) -> str:
    """Entra ID access token -> ACR refresh token (POST /oauth2/exchange, grant_type=access_token)."""
    response = requests.post(
        f"https://{login_server}/oauth2/exchange", timeout=30,
        data={"grant_type": "access_token", "service": login_server, "tenant": tenant, "access_token": aad_token})
    response.raise_for_status()
    return response.json()["refresh_token"]


def exchange_with_retry(login_server: str, tenant: str, tokens: list[str], attempts: int = EXCHANGE_ATTEMPTS,
                        sleep: Callable[[float], None] = time.sleep) -> str:
    """The exchange with each token in turn, registry audience first, each tried `attempts` times.

    A registry can refuse ARM-audience tokens (`azureADAuthenticationAsArmPolicy` disabled, as hardened
    subscriptions set it), so the registry-audience token goes first and ARM's is the fallback. On a first
    `pulumi up` the registry and the deployer's AcrPush are minutes old: a 401 then only means "not yet".
    """
    delay, failures, live = 2.0, [], list(tokens)
    for attempt in range(attempts):
        for token in list(live):
            try:
                return exchange_aad_token(login_server, tenant, token)
            except (requests.HTTPError, requests.ConnectionError, requests.Timeout) as err:
                status = getattr(getattr(err, "response", None), "status_code", None)
                failures.append(str(status or type(err).__name__))
                if status is not None and status not in RETRIED_STATUS:
                    live.remove(token)  # refused for good (400 malformed, 403): waiting will not change it
        if not live:
            break
        if attempt + 1 < attempts:
            sleep(delay)
            delay = min(delay * 2, 30.0)
    raise RuntimeError(f"{login_server}: the registry refused the deploying identity's Entra tokens "
                       f"({', '.join(failures)}); it needs AcrPush on the registry (a new role assignment can take "
                       f"minutes to apply: run `pulumi up` again)")


def registry_credential(login_server: pulumi.Input[str], *,
                        opts: Optional[pulumi.InvokeOutputOptions] = None) -> pulumi.Output[RegistryCredential]:
    """A push/pull credential for an ACR from the deploying Azure identity (secret)."""
    client = authorization.get_client_config_output(opts=opts)
    registry_token = authorization.get_client_token_output(endpoint=REGISTRY_AUDIENCE, opts=opts)
    arm_token = authorization.get_client_token_output(opts=opts)
    return pulumi.Output.secret(pulumi.Output.all(login_server, client.tenant_id, registry_token.token,
                                                  arm_token.token).apply(
        lambda a: RegistryCredential(a[0], NULL_USER, exchange_with_retry(a[0], a[1], [a[2], a[3]]))))


def global_login_server(global_registry: Optional[str]) -> Optional[str]:
    """`workspace.globalRegistry` as a login server: a bare registry name means `<name>.azurecr.io`."""
    if not global_registry:
        return None
    return global_registry if "." in global_registry else f"{global_registry}.azurecr.io"


# ---------------------------------------------------------------- the component


class EnvironmentImage(pulumi.ComponentResource):
    """The image of one environment content, by digest: found in a registry, or built and pushed."""

    env_hash: str
    repository: str
    tag: str
    image_ref: pulumi.Output[str]  # <registry>/<repository>@sha256:..., unknown in previews
    digest: pulumi.Output[str]  # sha256:...
    source: pulumi.Output[str]  # "workspace", "global" or "built"

    def __init__(self, name: str, env: Environment, root: Path, registry_login_server: pulumi.Input[str],
                 global_registry: Optional[str] = None, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("aks-serving:index:EnvironmentImage", name, None, opts)
        self.env_hash = environment_hash(env, root)
        self.repository = repository_for(self.env_hash)
        self.tag = self.env_hash
        context = build_context_files(env, root)
        context_dir = root / ".serving" / "images" / self.env_hash

        invoke = pulumi.InvokeOutputOptions(parent=self)
        workspace_cred = registry_credential(registry_login_server, opts=invoke)
        global_server = global_login_server(global_registry)
        global_cred = registry_credential(global_server, opts=invoke) if global_server else None
        creds = [workspace_cred] + ([global_cred] if global_cred else [])
        # Registry auth for the lookup invokes comes from this provider, not from ~/.docker/config.json.
        provider = docker.Provider(f"{name}-registry", registry_auth=[
            docker.ProviderRegistryAuthArgs(address=c.server, username=c.username, password=c.password)
            for c in creds], opts=pulumi.ResourceOptions(parent=self))
        lookup_opts = pulumi.InvokeOptions(parent=self, provider=provider)

        def resolve(args: list):
            found = None
            for source, cred in zip(("workspace", "global"), args):
                digest = _lookup(f"{cred.server}/{self.repository}:{self.tag}", lookup_opts)
                if digest is not None:
                    found = (source, f"{cred.server}/{self.repository}@{digest}", digest)
                    break
            if found is not None:
                return found
            # Neither registry has it: build and push. Registered here because whether to build is only
            # known once the lookup has run; docker.Image never deletes a pushed tag when it leaves the stack.
            workspace = args[0]
            _write_context(context_dir, context)
            image = docker.Image(
                f"{name}-build", image_name=f"{workspace.server}/{self.repository}:{self.tag}",
                build=docker.DockerBuildArgs(context=str(context_dir), dockerfile=str(context_dir / "Dockerfile"),
                                             platform=PLATFORM),
                registry=docker.RegistryArgs(server=workspace.server, username=workspace.username,
                                             password=pulumi.Output.secret(workspace.password)),
                opts=pulumi.ResourceOptions(parent=self))
            return image.repo_digest.apply(lambda ref: ("built", ref, ref.split("@", 1)[1]))

        resolved = pulumi.Output.all(*creds).apply(resolve)
        # The credentials made `resolved` secret; the reference and digest are not secrets.
        self.source = pulumi.Output.unsecret(resolved.apply(lambda r: r[0]))
        self.image_ref = pulumi.Output.unsecret(resolved.apply(lambda r: r[1]))
        self.digest = pulumi.Output.unsecret(resolved.apply(lambda r: r[2]))
        self.register_outputs({"repository": self.repository, "tag": self.tag, "imageRef": self.image_ref,
                               "digest": self.digest, "source": self.source})


def _lookup(name: str, opts: pulumi.InvokeOptions) -> Optional[str]:
    """The tag's manifest digest, or None when the registry does not have it."""
    try:
        return docker.get_registry_image(name=name, opts=opts).sha256_digest
    except Exception as err:  # the SDK raises a plain Exception for a failed invoke
        if _NOT_FOUND.search(str(err)):
            return None
        raise


def _write_context(context_dir: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        path = context_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        path.chmod(0o644)  # the same layers whatever the umask


# ---------------------------------------------------------------- one image per environment content


def images_for(cfg: StackConfig, root: Path, registry_login_server: pulumi.Input[str],
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
                f"image-{env_hash[:12]}", cfg.environments[spec.environment], root, registry_login_server,
                cfg.workspace.global_registry_login_server, opts=opts)
    return images


def image_of(cfg: StackConfig, root: Path, images: dict[str, EnvironmentImage], environment: str) -> EnvironmentImage:
    return images[environment_hash(cfg.environments[environment], root)]

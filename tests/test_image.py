"""EnvironmentImage and SourceImage under Pulumi's mocks: registered at program time, lookup before build,
one image per environment content, digests, normalized build contexts.

Stand-ins: `AzureStandIn` answers the Azure invokes; the RegistryImage provider's network calls (Entra and
the ACR token exchange, the registry's manifest API, an ACR Tasks run, a docker build) are replaced by its
methods through `registries_stood_in` (`registry_digests` is what the registries hold; a build adds a
digest). The HTTP clients themselves are tested against local servers in test_registry_http.py and
test_acr_tasks.py.
"""
import asyncio
import base64
import gzip
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile

import pulumi
import pytest
from pulumi.runtime import mocks, settings
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from components import registry_image
from components.build_context import context_tarball
from components.config import Environment, parse_stack_config
from components.environment import environment_hash
from components.image import EnvironmentImage, RegistryTarget, build_context_files, image_of, images_for
from components.registry_http import RegistryError
from components.source_image import SourceImage, folder_context
from fetcher.content import folder_files as folder_files_of
from pulumi_mocks import (REGISTRY_IMAGE, ROOT, AzureStandIn, RecordingMonitor, registries_stood_in, run_program,
                          stack_file_config)

LOGIN = "mlwdevacr.azurecr.io"
GLOBAL = "contosoglobal.azurecr.io"
REGISTRY_ID = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/mlwdevacr"
DIGEST = "sha256:" + "ab" * 32


@pytest.fixture
def root(tmp_path):
    """A project root holding the dev stack's conda files."""
    for path in ("models/diabetes/conda.yml", "models/sentiment/conda.yml"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / path, tmp_path / path)
    return tmp_path


def run(program, *, stand_in=None, preview=False):
    """Run `program()` (which returns a dict of values to resolve) under the mocks; (stand_in, resolved)."""
    stand_in = stand_in or AzureStandIn()
    asyncio.set_event_loop(asyncio.new_event_loop())
    settings.reset_options(project="aks-serving", stack="test", preview=preview)
    mocks.set_mocks(stand_in, project="aks-serving", stack="test", preview=preview,
                    monitor=RecordingMonitor(stand_in))
    box = {}
    with registries_stood_in(stand_in):
        _sync_await(run_pulumi_func(lambda: box.update(program())))
    resolved = {}
    for key, value in box.items():
        output = pulumi.Output.from_input(value)
        known = _sync_await(output.is_known())
        resolved[key] = _sync_await(output.future()) if known else None
    return stand_in, resolved


def dev_config(**services):
    raw = stack_file_config("dev")
    raw["services"] = {**raw["services"], **services}
    return parse_stack_config(raw)


def target(login=LOGIN):
    return RegistryTarget(pulumi.Output.from_input(login), REGISTRY_ID)


def one_image(root, env=None, login=LOGIN, global_registry=None, builder="acr-task"):
    env = env or Environment(conda_file="models/diabetes/conda.yml")
    img = EnvironmentImage("img", env, root, target(login), global_registry, builder)
    return {"ref": img.image_ref, "digest": img.digest, "source": img.source, "tag": img.tag,
            "repository": img.repository}


def diabetes_image(root):
    env_hash = environment_hash(Environment(conda_file="models/diabetes/conda.yml"), root)
    return env_hash, f"azureml/azureml_{env_hash}"


def members(tarball: bytes) -> dict:
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as tar:
        return {m.name: (m.mode, m.mtime, m.uid, m.gid, m.uname, m.gname, tar.extractfile(m).read())
                for m in tar.getmembers()}


# ---------------------------------------------------------------- the Dockerfile


def test_dockerfile_builds_the_environment_and_runs_the_server_as_non_root(tmp_path):
    (tmp_path / "conda.yml").write_text("channels: [conda-forge]\ndependencies:\n  - python=3.8\n"
                                        "  - scikit-learn=1.0.2\n  - pip:\n    - azureml-defaults\n")
    env = Environment(conda_file="conda.yml", base_image="mcr.microsoft.com/azureml/base:1",
                      docker_steps=["RUN apt-get update && apt-get install -y libgomp1"])
    files = build_context_files(env, tmp_path)
    lines = files["Dockerfile"].decode().splitlines()
    assert lines[0] == "FROM --platform=linux/amd64 mcr.microsoft.com/azureml/base:1"
    # Pip keeps numpy on the ABI of the pinned compiled release; conda gets the user's file as it is.
    abi = lines.index("RUN python /tmp/aks-serving-build/numpy_abi.py scikit-learn==1.0.2 "
                      "> /tmp/aks-serving-build/constraints.txt")
    conda = lines.index("RUN PIP_CONSTRAINT=/tmp/aks-serving-build/constraints.txt conda env create --prefix "
                        "/opt/azureml/env --file /tmp/aks-serving-build/conda.yml && conda clean --all --yes")
    # The server only where the environment lacks a recent one, never pinned over the user's packages.
    server = lines.index("RUN python /tmp/aks-serving-build/add_server.py 0.7.0 --no-cache-dir")
    # v1's runtime API after it (it replaces the PyPI alpha of its name), its blob libraries where they fit.
    wheel = lines.index("RUN python -m pip wheel --no-cache-dir --no-deps -w /tmp/aks-serving-build/wheels "
                        "/tmp/aks-serving-build/v1runtime")  # with the base image's Python, before the env
    runtime = next(i for i, line in enumerate(lines) if line.startswith(
        "RUN python -m pip install --no-cache-dir --no-deps /tmp/aks-serving-build/wheels/*.whl && "
        "(python /tmp/aks-serving-build/fit.py \"$(ls /tmp/aks-serving-build/wheels/*.whl)[blob]\" -- "
        "--no-cache-dir || "))
    step = lines.index("RUN apt-get update && apt-get install -y libgomp1")
    user = lines.index("USER 10001:10001")
    assert wheel < abi < conda < server < runtime < step < user  # the Docker steps run as root, after the environment
    assert "USER root" not in lines[user:]
    assert lines[-2:] == ["EXPOSE 5001", 'CMD ["python", "/opt/aks-serving/serve.py"]']
    assert lines[runtime].endswith("&& mkdir -p /opt/aks-serving && cp /tmp/aks-serving-build/serve.py "
                                   "/tmp/aks-serving-build/add_server.py /tmp/aks-serving-build/fit.py "
                                   "/opt/aks-serving/ && rm -rf /tmp/aks-serving-build")
    # The scripts it runs are the ones `make run` runs in its environments, byte for byte.
    assert files["conda.yml"] == (tmp_path / "conda.yml").read_bytes()
    assert files["add_server.py"] == (ROOT / "envbuild/add_server.py").read_bytes()
    assert files["numpy_abi.py"] == (ROOT / "envbuild/numpy_abi.py").read_bytes()
    assert files["v1runtime/azureml/monitoring/modeldatacollector.py"] == \
        (ROOT / "v1runtime/azureml/monitoring/modeldatacollector.py").read_bytes()
    assert not [name for name in files if "__pycache__" in name or ".egg-info" in name]


def test_a_conda_file_that_pins_numpy_gets_no_numpy_constraint(tmp_path):
    (tmp_path / "conda.yml").write_text("dependencies:\n  - numpy=1.21\n  - scikit-learn=1.0.2\n")
    lines = build_context_files(Environment(conda_file="conda.yml"), tmp_path)["Dockerfile"].decode().splitlines()
    assert "RUN touch /tmp/aks-serving-build/constraints.txt" in lines


# ---------------------------------------------------------------- lookup, build, digest


def test_an_image_no_registry_has_is_built_by_an_acr_task_from_its_normalized_context(root):
    stand_in, out = run(lambda: one_image(root))
    env_hash, repository = diabetes_image(root)
    assert out["tag"] == env_hash and out["repository"] == repository
    [(builder, image, context)] = stand_in.builds
    assert (builder, image) == ("acr-task", f"{LOGIN}/{repository}:{env_hash}")
    files = build_context_files(Environment(conda_file="models/diabetes/conda.yml"), root)
    assert {name: m[6] for name, m in members(context).items()} == files
    assert {m[:6] for m in members(context).values()} == {(0o644, 0, 0, 0, "", "")}
    # The pushed digest is read back from the registry, and the reference names it, never the tag.
    assert stand_in.lookups == [f"{LOGIN}/{repository}:{env_hash}"] * 2
    assert out["source"] == "built" and out["ref"] == f"{LOGIN}/{repository}@{out['digest']}"


def test_a_tag_the_workspace_registry_has_is_not_built(root):
    env_hash, repository = diabetes_image(root)
    stand_in = AzureStandIn(registry_digests={f"{LOGIN}/{repository}:{env_hash}": DIGEST})
    _, out = run(lambda: one_image(root), stand_in=stand_in)
    assert stand_in.builds == []
    assert out["ref"] == f"{LOGIN}/{repository}@{DIGEST}" and out["source"] == "workspace"


def test_the_global_registry_is_searched_after_the_workspace_one(root):
    env_hash, repository = diabetes_image(root)
    stand_in = AzureStandIn(registry_digests={f"{GLOBAL}/{repository}:{env_hash}": DIGEST})
    _, out = run(lambda: one_image(root, global_registry="contosoglobal"), stand_in=stand_in)
    assert stand_in.lookups == [f"{LOGIN}/{repository}:{env_hash}", f"{GLOBAL}/{repository}:{env_hash}"]
    assert stand_in.token_exchanges == [LOGIN, GLOBAL]
    assert stand_in.builds == []
    assert out["ref"] == f"{GLOBAL}/{repository}@{DIGEST}" and out["source"] == "global"


def test_a_registry_error_other_than_not_found_fails_the_run(root):
    class Unauthorized(AzureStandIn):
        def lookup(self, server, repository, tag, token=None):
            raise RegistryError(f"{server}/{repository}:{tag}: the registry answered 401 to a manifest request")

    stand_in = Unauthorized()
    with pytest.raises(Exception, match="401"):
        run(lambda: one_image(root), stand_in=stand_in)
    assert stand_in.builds == []


def test_downstream_gets_a_digest_reference_never_a_tag(root):
    _, out = run(lambda: one_image(root))
    assert re.fullmatch(rf"{re.escape(LOGIN)}/azureml/azureml_[0-9a-f]{{64}}@sha256:[0-9a-f]{{64}}", out["ref"])
    assert out["ref"].endswith("@" + out["digest"]) and ":" + out["tag"] not in out["ref"]


def test_a_first_preview_registers_the_image_but_looks_up_and_builds_nothing(root):
    stand_in, out = run(lambda: one_image(root, login=_unknown()), preview=True)
    [image] = [r for r in stand_in.created if r.type == REGISTRY_IMAGE]  # listed in the preview, as `up` will make it
    env_hash, repository = diabetes_image(root)
    assert (image.inputs["repository"], image.inputs["tag"], image.inputs["builder"]) == (repository, env_hash, "acr-task")
    assert out["ref"] is None and out["digest"] is None
    assert stand_in.lookups == [] and stand_in.builds == [] and stand_in.token_exchanges == []


def _unknown():
    """An Output whose value is unknown, as a registry's login server is in a first preview."""
    from pulumi.output import UNKNOWN
    return pulumi.Output.from_input(UNKNOWN)


# ---------------------------------------------------------------- the whole program: no Docker, stable inputs


def test_with_builder_acr_task_the_program_registers_no_docker_provider_or_resource():
    stand_in = AzureStandIn()
    run = run_program(stack_file_config("dev"), stack="dev", stand_in=stand_in)
    assert [r.type for r in run.resources if "docker" in r.type] == []
    assert [token for token, _ in run.invokes if token.startswith("docker:")] == []
    # Two environments, the router and the fetcher: each a RegistryImage, built by ACR Tasks.
    assert len(run.of_type(REGISTRY_IMAGE)) == 4
    assert sorted(builder for builder, _, _ in stand_in.builds) == ["acr-task"] * 4


def test_a_first_preview_lists_every_image_it_would_build():
    run = run_program(stack_file_config("dev"), stack="dev", preview=True)
    assert len(run.of_type(REGISTRY_IMAGE)) == 4


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_a_second_run_of_an_unchanged_stack_gives_identical_image_inputs_and_no_token_anywhere(stack):
    first = run_program(stack_file_config(stack), stack=stack)  # `pulumi up`: the state holds its outputs
    second = run_program(stack_file_config(stack), stack=stack, preview=True)  # the next preview
    inputs = lambda run: {r.name: _inputs(r) for r in run.of_type(REGISTRY_IMAGE)}  # noqa: E731
    assert inputs(first) == inputs(second) and len(inputs(first)) >= 3
    provider = registry_image.RegistryImageProvider()
    olds = {r.name: r.inputs for r in first.of_type(REGISTRY_IMAGE)}
    assert {name: provider.diff("id", olds[name], news).changes for name, news in inputs(second).items()} == \
        {name: False for name in olds}  # the provider's diff: no change for any image
    text = json.dumps(inputs(first)) + "".join(_provider_bytes(r).decode("latin-1") for r in first.of_type(REGISTRY_IMAGE))
    assert "acr-refresh-token" not in text and "entra-access-token" not in text and "password" not in text


def _inputs(registered):
    """A RegistryImage's inputs as the engine compares them (its outputs, which the provider computes, aside)."""
    return {k: v for k, v in registered.inputs.items() if k not in ("digest", "image_ref", "source")}


def _provider_bytes(registered) -> bytes:
    serialized = registered.inputs["__provider"]
    serialized = serialized.get("value", serialized) if isinstance(serialized, dict) else serialized
    return base64.b64decode(serialized)


def test_the_serialized_provider_loads_in_a_fresh_process_started_in_the_project():
    """As Pulumi's dynamic provider host does: dill.loads in a process whose working directory is the project."""
    run = run_program(stack_file_config("dev"), stack="dev", preview=True)
    blob = base64.b64encode(_provider_bytes(run.of_type(REGISTRY_IMAGE)[0])).decode()
    code = ("import base64, sys, dill; p = dill.loads(base64.b64decode(sys.stdin.read())); "
            "print(type(p).__module__, type(p).__name__, p.diff('x', {'tag': 'a'}, {'tag': 'a'}).changes)")
    done = subprocess.run([sys.executable, "-c", code], input=blob, capture_output=True, text=True, cwd=ROOT,
                          env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, timeout=120)
    assert done.stdout.split() == ["components.registry_image", "RegistryImageProvider", "False"], done.stderr


def test_only_content_changes_make_a_registry_image_differ():
    provider = registry_image.RegistryImageProvider()
    old = {"server": LOGIN, "repository": "aks-serving/router", "tag": "a" * 32, "global_server": None,
           "builder": "acr-task", "registry_id": REGISTRY_ID, "context_path": "/ci/run-1/.serving/images/r.tar.gz",
           "digest": DIGEST, "image_ref": f"{LOGIN}/aks-serving/router@{DIGEST}", "source": "built", "__provider": "x"}
    moved = {**old, "context_path": "/ci/run-2/.serving/images/r.tar.gz", "__provider": "y"}
    assert provider.diff("id", old, moved).changes is False
    changed = provider.diff("id", old, {**old, "tag": "b" * 32})
    assert changed.changes is True and changed.replaces == ["tag"]


# ---------------------------------------------------------------- builder docker


def test_builder_docker_without_a_daemon_fails_in_one_line_before_anything_is_created(monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/docker.sock")  # nothing listens there
    config = stack_file_config("dev")
    config["images"] = {"builder": "docker"}
    stand_in = AzureStandIn()
    with pytest.raises(Exception) as failure:
        run_program(config, stack="dev", stand_in=stand_in)
    message = str(failure.value)
    assert message == (f"images.builder: docker builds with a local Docker daemon, and none answers at "
                       f"unix://{tmp_path}/docker.sock (DOCKER_HOST); start Docker, or set images.builder to "
                       "acr-task to build in the registry with no local Docker")
    assert [r.type for r in stand_in.created if r.type != "pulumi:pulumi:Stack"] == []


def test_builder_docker_with_a_daemon_builds_locally(monkeypatch, tmp_path):
    import socket
    import threading
    path = tmp_path / "docker.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(4)
    server.settimeout(30)

    def answer_pings():  # a stand-in daemon: answers `GET /_ping` as dockerd does
        try:
            while True:
                conn, _ = server.accept()
                with conn:
                    conn.recv(1024)
                    conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nOK")
        except OSError:
            pass

    threading.Thread(target=answer_pings, daemon=True).start()
    monkeypatch.setenv("DOCKER_HOST", f"unix://{path}")
    config = stack_file_config("dev")
    config["images"] = {"builder": "docker"}
    stand_in = AzureStandIn()
    try:
        run = run_program(config, stack="dev", stand_in=stand_in)
    finally:
        server.close()
    assert {builder for builder, _, _ in stand_in.builds} == {"docker"}
    assert {r.inputs["builder"] for r in run.of_type(REGISTRY_IMAGE)} == {"docker"}
    assert [r.type for r in run.resources if "docker" in r.type] == []


# ---------------------------------------------------------------- build contexts


def test_a_source_images_context_is_byte_identical_whatever_the_umask_and_mtimes(tmp_path):
    contexts, tags = [], []
    for umask, mtime in ((0o022, 1_700_000_000), (0o077, 1_800_000_000)):
        folder = tmp_path / f"umask-{umask:o}" / "router"
        old = os.umask(umask)
        try:
            for relative, source in folder_files_of(ROOT / "router"):  # written fresh: modes follow the umask
                (folder / relative).parent.mkdir(parents=True, exist_ok=True)
                (folder / relative).write_bytes(source.read_bytes())
        finally:
            os.umask(old)
        for path in folder.rglob("*"):
            os.utime(path, (mtime, mtime))
        _, out = run(lambda: {"tag": SourceImage("router-image", folder, target()).tag})
        tags.append(out["tag"])
        contexts.append(context_tarball(folder_context(folder)))
        written = next((folder.parent / ".serving" / "images").glob("aks-serving_router-*.tar.gz"))
        assert written.read_bytes() == contexts[-1]
    modes = {oct((tmp_path / f"umask-{u:o}" / "router" / "settings.py").stat().st_mode & 0o777) for u in (0o22, 0o77)}
    assert modes == {"0o644", "0o600"}  # the checkouts differ; their contexts must not
    assert contexts[0] == contexts[1] and tags[0] == tags[1]
    assert {m[:6] for m in members(contexts[0]).values()} == {(0o644, 0, 0, 0, "", "")}
    assert gzip.decompress(contexts[0]) and contexts[0][4:8] == b"\0\0\0\0"  # no time in the gzip header


def test_a_native_build_in_the_checkout_changes_neither_the_router_tag_nor_its_context(tmp_path):
    folder = tmp_path / "router"
    for relative, source in folder_files_of(ROOT / "router"):
        if not relative.endswith(".so") and relative != "native-sources.txt":
            (folder / relative).parent.mkdir(parents=True, exist_ok=True)
            (folder / relative).write_bytes(source.read_bytes())
    _, before = run(lambda: {"tag": SourceImage("router-image", folder, target()).tag})
    (folder / "http" / "server.cpython-311-x86_64-linux-gnu.so").write_bytes(b"\x7fELF built here")
    (folder / "native-sources.txt").write_text("0" * 64 + "  router/http/server.py\n")
    _, after = run(lambda: {"tag": SourceImage("router-image", folder, target()).tag})
    assert after["tag"] == before["tag"]
    assert not [name for name in folder_context(folder) if name.endswith(".so") or name == "native-sources.txt"]
    assert "http/server.py" in folder_context(folder)


# ---------------------------------------------------------------- one image per environment content


def test_services_sharing_an_environment_share_one_image(root):
    cfg = dev_config(other=dict(environment="numpy", entryScript="models/sentiment/score.py",
                                models=["models/sentiment/model-v2"]))
    box = {}

    def program():
        images = images_for(cfg, root, target())
        box["images"] = images
        return {"sentiment": image_of(cfg, root, images, "numpy").image_ref,
                "diabetes": image_of(cfg, root, images, "sklearn").image_ref}

    stand_in, out = run(program)
    # diabetes uses sklearn; sentiment, other and both sentiment-ab versions use numpy: two images.
    assert len(box["images"]) == 2
    assert len([r for r in stand_in.created if r.type == "aks-serving:index:EnvironmentImage"]) == 2
    assert len([r for r in stand_in.created if r.type == REGISTRY_IMAGE]) == 2 and len(stand_in.builds) == 2
    assert out["sentiment"] != out["diabetes"]


def test_two_environment_names_with_the_same_content_share_one_image(root):
    raw = stack_file_config("dev")
    raw["environments"]["sklearn-copy"] = {"condaFile": "models/diabetes/conda.yml"}
    raw["services"]["diabetes2"] = {**raw["services"]["diabetes"], "environment": "sklearn-copy"}
    cfg = parse_stack_config(raw)
    box = {}
    run(lambda: box.update(images=images_for(cfg, root, target())) or {})
    assert len(box["images"]) == 2


def test_an_unchanged_config_gives_the_same_tag_and_a_changed_conda_file_another(root):
    _, first = run(lambda: one_image(root))
    _, second = run(lambda: one_image(root))
    assert first["tag"] == second["tag"] and first["ref"] == second["ref"]
    conda = root / "models/diabetes/conda.yml"
    conda.write_text(conda.read_text() + "# one more byte\n")
    stand_in, changed = run(lambda: one_image(root))
    assert changed["tag"] != first["tag"] and changed["ref"] != first["ref"]
    assert stand_in.builds[0][1].endswith(f":{changed['tag']}")

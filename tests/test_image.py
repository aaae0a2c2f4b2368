"""EnvironmentImage under Pulumi's mocks: lookup before build, one image per environment content, digests.

Stand-ins: `AzureStandIn` answers the Entra token and the registry lookup (`registry_digests` is what the
registries hold) and gives a built image a digest; `exchange_aad_token` (the ACR token exchange, HTTPS) is
replaced by a function that records its calls.
"""
import asyncio
import re
import shutil
from pathlib import Path

import pulumi
import pytest
from pulumi.runtime import mocks, settings
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from components import image as image_module
from components.config import Environment, parse_stack_config
from components.environment import environment_hash
from components.image import EnvironmentImage, images_for, image_of, build_context_files
from pulumi_mocks import ROOT, AzureStandIn, RecordingMonitor, stack_file_config

BUILD = "docker:index/image:Image"
LOGIN = "mlwdevacr.azurecr.io"
GLOBAL = "contosoglobal.azurecr.io"
DIGEST = "sha256:" + "ab" * 32
SECRET_SIG, SECRET_VALUE = "4dabf18193072939515e22adb298388d", "1b47061264138c4ac30d75fd1eb44270"  # a secret's wire form


@pytest.fixture
def root(tmp_path):
    """A project root holding the dev stack's conda files."""
    for path in ("models/diabetes/conda.yml", "models/sentiment/conda.yml"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / path, tmp_path / path)
    return tmp_path


@pytest.fixture(autouse=True)
def token_exchange(monkeypatch):
    calls = []

    def exchange(login_server, tenant, aad_token):
        calls.append((login_server, tenant, aad_token))
        return f"acr-refresh-token-for-{login_server}"

    monkeypatch.setattr(image_module, "exchange_aad_token", exchange)
    return calls


def run(program, *, stand_in=None, preview=False):
    """Run `program()` (which returns a dict of values to resolve) under the mocks; (stand_in, resolved)."""
    stand_in = stand_in or AzureStandIn()
    asyncio.set_event_loop(asyncio.new_event_loop())
    settings.reset_options(project="aks-serving", stack="test", preview=preview)
    mocks.set_mocks(stand_in, project="aks-serving", stack="test", preview=preview,
                    monitor=RecordingMonitor(stand_in))
    box = {}
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


def one_image(root, env=None, login=LOGIN, global_registry=None):
    env = env or Environment(conda_file="models/diabetes/conda.yml")
    img = EnvironmentImage("img", env, root, pulumi.Output.from_input(login), global_registry)
    return {"ref": img.image_ref, "digest": img.digest, "source": img.source, "tag": img.tag,
            "repository": img.repository}


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


def test_an_image_no_registry_has_is_built_for_amd64_and_pushed_with_an_exchanged_token(root, token_exchange):
    stand_in, out = run(lambda: one_image(root))
    build = stand_in_one(stand_in, BUILD)
    env_hash = environment_hash(Environment(conda_file="models/diabetes/conda.yml"), root)
    assert out["tag"] == env_hash and out["repository"] == f"azureml/azureml_{env_hash}"
    assert build["imageName"] == f"{LOGIN}/azureml/azureml_{env_hash}:{env_hash}"
    assert build["build"]["platform"] == "linux/amd64"
    registry = build["registry"]
    assert registry[SECRET_SIG] == SECRET_VALUE, "the push credential must be a secret in the state"
    assert registry["value"]["username"] == "00000000-0000-0000-0000-000000000000"
    assert registry["value"]["password"] == f"acr-refresh-token-for-{LOGIN}"
    assert token_exchange == [(LOGIN, "c0ffee00-1111-4222-8333-444455556666", "entra-access-token")]
    context = Path(build["build"]["context"])
    assert (context / "conda.yml").read_bytes() == (root / "models/diabetes/conda.yml").read_bytes()
    assert (context / "Dockerfile").read_text().startswith("FROM --platform=linux/amd64 ")
    assert sorted(p.name for p in context.iterdir()) == ["Dockerfile", "add_server.py", "conda.yml", "fit.py",
                                                         "numpy_abi.py", "serve.py", "v1runtime"]
    assert {oct(p.stat().st_mode & 0o777) for p in context.rglob("*") if p.is_file()} == {"0o644"}  # any umask
    assert out["source"] == "built"


def test_a_tag_the_workspace_registry_has_is_not_built(root):
    env_hash = environment_hash(Environment(conda_file="models/diabetes/conda.yml"), root)
    stand_in = AzureStandIn(registry_digests={f"{LOGIN}/azureml/azureml_{env_hash}:{env_hash}": DIGEST})
    _, out = run(lambda: one_image(root), stand_in=stand_in)
    assert [r for r in stand_in.created if r.type == BUILD] == []
    assert out["ref"] == f"{LOGIN}/azureml/azureml_{env_hash}@{DIGEST}" and out["source"] == "workspace"


def test_the_global_registry_is_searched_after_the_workspace_one(root):
    env_hash = environment_hash(Environment(conda_file="models/diabetes/conda.yml"), root)
    stand_in = AzureStandIn(registry_digests={f"{GLOBAL}/azureml/azureml_{env_hash}:{env_hash}": DIGEST})
    _, out = run(lambda: one_image(root, global_registry="contosoglobal"), stand_in=stand_in)
    looked_up = [a["name"] for t, a in stand_in.invokes if t == "docker:index/getRegistryImage:getRegistryImage"]
    assert looked_up == [f"{LOGIN}/azureml/azureml_{env_hash}:{env_hash}", f"{GLOBAL}/azureml/azureml_{env_hash}:{env_hash}"]
    assert [r for r in stand_in.created if r.type == BUILD] == []
    assert out["ref"] == f"{GLOBAL}/azureml/azureml_{env_hash}@{DIGEST}" and out["source"] == "global"


def test_a_registry_error_other_than_not_found_fails_the_run(root):
    class Unauthorized(AzureStandIn):
        def call(self, args):
            if args.token == "docker:index/getRegistryImage:getRegistryImage":
                return {}, [("name", "Got bad response from registry: 401 Unauthorized")]
            return super().call(args)

    stand_in = Unauthorized()
    with pytest.raises(Exception, match="401"):
        run(lambda: one_image(root), stand_in=stand_in)
    assert [r for r in stand_in.created if r.type == BUILD] == []


def test_downstream_gets_a_digest_reference_never_a_tag(root):
    _, out = run(lambda: one_image(root))
    assert re.fullmatch(rf"{re.escape(LOGIN)}/azureml/azureml_[0-9a-f]{{64}}@sha256:[0-9a-f]{{64}}", out["ref"])
    assert out["ref"].endswith("@" + out["digest"]) and ":" + out["tag"] not in out["ref"]


def test_a_preview_with_an_unknown_registry_builds_nothing_and_leaves_the_digest_unknown(root):
    stand_in, out = run(lambda: one_image(root, login=_unknown()), preview=True)
    assert out["ref"] is None and out["digest"] is None
    assert [r for r in stand_in.created if r.type == BUILD] == []


def _unknown():
    """An Output whose value is unknown, as a registry's login server is in a first preview."""
    from pulumi.output import UNKNOWN
    return pulumi.Output.from_input(UNKNOWN)


# ---------------------------------------------------------------- one image per environment content


def test_services_sharing_an_environment_share_one_image(root):
    cfg = dev_config(other=dict(environment="numpy", entryScript="models/sentiment/score.py",
                                models=["models/sentiment/model-v2"]))
    box = {}

    def program():
        images = images_for(cfg, root, pulumi.Output.from_input(LOGIN))
        box["images"] = images
        return {"sentiment": image_of(cfg, root, images, "numpy").image_ref,
                "diabetes": image_of(cfg, root, images, "sklearn").image_ref}

    stand_in, out = run(program)
    # diabetes uses sklearn; sentiment, other and both sentiment-ab versions use numpy: two images.
    assert len(box["images"]) == 2
    assert len([r for r in stand_in.created if r.type == "aks-serving:index:EnvironmentImage"]) == 2
    assert len([r for r in stand_in.created if r.type == BUILD]) == 2
    assert out["sentiment"] != out["diabetes"]


def test_two_environment_names_with_the_same_content_share_one_image(root):
    raw = stack_file_config("dev")
    raw["environments"]["sklearn-copy"] = {"condaFile": "models/diabetes/conda.yml"}
    raw["services"]["diabetes2"] = {**raw["services"]["diabetes"], "environment": "sklearn-copy"}
    cfg = parse_stack_config(raw)
    box = {}
    run(lambda: box.update(images=images_for(cfg, root, LOGIN)) or {})
    assert len(box["images"]) == 2


def test_an_unchanged_config_gives_the_same_tag_and_a_changed_conda_file_another(root):
    _, first = run(lambda: one_image(root))
    _, second = run(lambda: one_image(root))
    assert first["tag"] == second["tag"] and first["ref"] == second["ref"]
    conda = root / "models/diabetes/conda.yml"
    conda.write_text(conda.read_text() + "# one more byte\n")
    stand_in, changed = run(lambda: one_image(root))
    assert changed["tag"] != first["tag"] and changed["ref"] != first["ref"]
    assert stand_in_one(stand_in, BUILD)["imageName"].endswith(f":{changed['tag']}")


def stand_in_one(stand_in, type_):
    found = [r for r in stand_in.created if r.type == type_]
    assert len(found) == 1, f"expected one {type_}, got {[r.name for r in found]}"
    return found[0].inputs


class Refusals:
    """The registry's /oauth2/exchange cannot be reached here; this stand-in answers as a registry whose
    AcrPush for the deployer has not applied yet (401), or that refuses ARM-audience tokens (401 for good)."""

    def __init__(self, answers: dict):
        self.answers, self.calls = {k: list(v) for k, v in answers.items()}, []

    def __call__(self, login_server, tenant, token):
        import requests
        self.calls.append(token)
        status = self.answers[token].pop(0) if self.answers[token] else 200
        if status == 200:
            return f"refresh-for-{token}"
        response = requests.Response()
        response.status_code = status
        raise requests.HTTPError(f"{status}", response=response)


def test_the_exchange_uses_the_registry_audience_first_and_waits_for_a_fresh_acrpush(monkeypatch):
    refusals = Refusals({"registry-token": [401, 401], "arm-token": [401, 401, 401]})
    monkeypatch.setattr(image_module, "exchange_aad_token", refusals)
    slept = []
    assert image_module.exchange_with_retry(LOGIN, "tenant", ["registry-token", "arm-token"], sleep=slept.append) \
        == "refresh-for-registry-token"
    assert refusals.calls == ["registry-token", "arm-token"] * 2 + ["registry-token"] and slept == [2, 4]


def test_a_token_refused_for_good_is_not_retried_and_a_lasting_refusal_is_named(monkeypatch):
    refusals = Refusals({"registry-token": [403] * 10, "arm-token": [401] * 10})
    monkeypatch.setattr(image_module, "exchange_aad_token", refusals)
    with pytest.raises(RuntimeError, match=rf"{LOGIN}: the registry refused the deploying identity's Entra tokens "
                                           r"\(403, 401, 401, 401\); it needs AcrPush"):
        image_module.exchange_with_retry(LOGIN, "tenant", ["registry-token", "arm-token"], attempts=3,
                                         sleep=lambda s: None)
    assert refusals.calls == ["registry-token", "arm-token", "arm-token", "arm-token"]


def test_the_credential_asks_entra_for_a_registry_audience_token(root):
    stand_in, _ = run(lambda: one_image(root))
    endpoints = [args.get("endpoint") for token, args in stand_in.invokes
                 if token == "azure-native:authorization:getClientToken"]
    assert "https://containerregistry.azure.net" in endpoints and None in endpoints

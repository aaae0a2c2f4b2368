"""The v1 inputs put together as stack config sections: `environments`, `services` (computeType AKS) or
`endpoints` (AKSENDPOINT: one version), `workspace`, `cluster` and `router` for a new stack, each value with
where it came from."""
from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import yaml

from policies.rules import naming
from v1import.compute import Compute
from v1import.deployment_config import DeploymentConfig
from v1import.inference_config import InferenceConfig
from v1import.model_args import ModelArg
from v1import.report import Report
from v1import.tree import Sourced, plain, put

# A GPU deployment needs a GPU pool; v1 put GPU models on a cluster whose one pool had GPU VMs.
GPU_POOL = {"name": "gpu", "vmSize": "Standard_NC4as_T4_v3"}
DEFAULT_VERSION = "v1"


@dataclass
class Inputs:
    stack: str
    service: str
    deployment: DeploymentConfig
    inference: InferenceConfig
    models: list[ModelArg]
    compute: Optional[Compute]
    root: Path  # the project folder: every path in the stack file is relative to it
    files_dir: Path  # where files the import writes (an inline conda file) go
    workspace: Optional[str] = None
    location: Optional[str] = None
    description: Optional[str] = None
    tags: dict[str, str] = field(default_factory=dict)
    properties: dict[str, str] = field(default_factory=dict)


@dataclass
class Plan:
    sections: dict[str, dict]  # section -> tree of Sourced
    files: dict[Path, str]  # files to write with the stack file (absolute path -> text)
    pending_secrets: tuple[str, ...] = ()  # required secrets the printed commands set (router.tls.key)


def build_plan(inputs: Inputs, report: Report) -> Plan:
    files: dict[Path, str] = {}
    env_name = inputs.inference.environment_name or inputs.service
    sections: dict[str, dict] = {"environments": {env_name: _environment(inputs, env_name, files, report)}}
    spec = _deployment(inputs, env_name, report)
    path = _place_deployment(inputs, spec, sections, report)
    _secret_commands(inputs, path, report)
    sections["workspace"] = _workspace(inputs)
    sections["cluster"] = _cluster(inputs, report)
    if inputs.compute is not None and inputs.compute.router:
        sections["router"] = inputs.compute.router
    pending = ("router.tls.key",) if inputs.compute is not None and inputs.compute.tls_key_file else ()
    if pending:
        report.note("router.tls.key", "custom TLS needs the key: the stack loads once the printed "
                                      "`pulumi config set --secret` command for it has run")
    return Plan(sections, files, pending)


def relative(inputs: Inputs, path: Path, source: str, report: Report) -> str:
    text = Path(os.path.relpath(path, inputs.root)).as_posix()
    if text.startswith("../"):
        report.note(source, f"{path} is outside the project folder {inputs.root}; the stack names it as {text}, "
                            "which works from this checkout only: copy it into the project to share the stack")
    return text


def _environment(inputs: Inputs, env_name: str, files: dict[Path, str], report: Report) -> dict:
    ic = inputs.inference
    env: dict = {}
    if ic.conda_file is not None:
        put(env, "condaFile", relative(inputs, ic.conda_file, ic.conda_source, report), ic.conda_source)
    else:
        target = inputs.files_dir / f"{env_name}.conda.yml"
        files[target] = (f"# {ic.conda_source}, written by `python -m v1import` as a conda file\n"
                         + yaml.safe_dump(ic.conda_inline, sort_keys=False))
        put(env, "condaFile", relative(inputs, target, ic.conda_source, report), ic.conda_source + " (written out)")
    env.update(ic.environment)
    return env


def _deployment(inputs: Inputs, env_name: str, report: Report) -> dict:
    ic, name = inputs.inference, inputs.inference.file.name
    spec: dict = {}
    put(spec, "environment", env_name, f"{name}: environment.name" if ic.environment_name
        else "--service (the inference config names no environment)")
    put(spec, "entryScript", relative(inputs, ic.entry_script, f"{name}: entryScript", report), f"{name}: entryScript")
    if ic.source_directory is not None:
        put(spec, "sourceDirectory", relative(inputs, ic.source_directory, f"{name}: sourceDirectory", report),
            f"{name}: sourceDirectory")
    if inputs.models:
        spec["models"] = Sourced([Sourced({"path": relative(inputs, m.path, f"--model {m.given}", report),
                                           "name": m.name, "version": m.version}, f"--model {m.given}")
                                  for m in inputs.models])
    else:
        report.note("--model", "no models given: the service starts with none (v1's -m was optional too)")
    spec.update(inputs.deployment.deployment)
    gpu = plain(spec.get("gpuCores")) or 0
    if gpu and inputs.compute is None:
        report.note("gpuCores", f"no --compute file: a {GPU_POOL['vmSize']} pool named {GPU_POOL['name']} is added "
                                "for the GPU model; adjust cluster.nodePools to your VM size")
    return spec


def _metadata(inputs: Inputs, tree: dict) -> None:
    put(tree, "description", inputs.description, "--description (az ml model deploy --description)")
    if inputs.tags:
        put(tree, "tags", dict(inputs.tags), "--tag (az ml model deploy --tag)")
    if inputs.properties:
        put(tree, "properties", dict(inputs.properties), "--property (az ml model deploy --property)")


def _place_deployment(inputs: Inputs, spec: dict, sections: dict, report: Report) -> str:
    dc = inputs.deployment
    if dc.compute_type == "AKS":
        service = {**spec, **dc.auth}
        _metadata(inputs, service)
        sections["services"] = {inputs.service: service}
        return f"services.{inputs.service}"
    version = dc.version_name or DEFAULT_VERSION
    if dc.version_name is None:
        report.note(f"{dc.file.name}: versionName", f"not set; the version is named {DEFAULT_VERSION}")
    endpoint = dict(dc.auth)
    _metadata(inputs, endpoint)
    endpoint["versions"] = {version: spec}
    sections["endpoints"] = {inputs.service: endpoint}
    return f"endpoints.{inputs.service}"


def _secret_commands(inputs: Inputs, path: str, report: Report) -> None:
    dc = inputs.deployment
    for key, v1_path in dc.keys.items():
        report.secret_commands.append(
            f"python -m v1import.read_key {_shell_path(dc.file)} {v1_path} | pulumi config set --stack "
            f"{inputs.stack} --secret --path 'aks-serving:{path}.keys.{key}'")
    if inputs.compute is not None and inputs.compute.tls_key_file is not None:
        report.secret_commands.append(f"pulumi config set --stack {inputs.stack} --secret --path "
                                      f"'aks-serving:router.tls.key' < {_shell_path(inputs.compute.tls_key_file)}")


def _shell_path(path: Path) -> str:
    return shlex.quote(os.path.relpath(path))


def _workspace(inputs: Inputs) -> dict:
    tree: dict = {}
    put(tree, "name", inputs.workspace or f"mlw-{inputs.stack}", "--workspace" if inputs.workspace else
        "default: mlw-<stack>; v1's workspace name with --workspace")
    location = inputs.location or (plain(inputs.compute.cluster.get("location")) if inputs.compute else None)
    put(tree, "location", location, "--location" if inputs.location else "the compute's location")
    return tree


def _cluster(inputs: Inputs, report: Report) -> dict:
    tree = dict(inputs.compute.cluster) if inputs.compute else {}
    if "name" not in tree and plain(tree.get("mode")) != "attach":
        target = inputs.compute.name if inputs.compute and inputs.compute.name else inputs.deployment.compute_target
        if target and not naming.check_cluster_name(target):
            put(tree, "name", target, inputs.compute.name_source if inputs.compute and inputs.compute.name
                else f"{inputs.deployment.file.name}: computeTargetName")
        else:
            put(tree, "name", f"aks-{inputs.stack}", "default: aks-<stack>")
    if inputs.compute is None:
        if plain(inputs.deployment.deployment.get("gpuCores")):
            tree["nodePools"] = Sourced([Sourced(dict(GPU_POOL), "a GPU pool for gpuCores")])
    return tree

"""`inferenceconfig.json` (`az ml model deploy -ic`), read as azureml-core's `file_to_inference_config` read
it: an `environment` (v1's Environment, as `Environment.save_to_directory` wrote it) or the legacy keys
(runtime, condaFile, extraDockerfileSteps, enableGpu, baseImage, baseImageRegistry, cudaVersion), never
both. Paths are relative to sourceDirectory when it is set, as v1 took them; sourceDirectory itself is
relative to the folder holding the inference config (where `az ml` ran)."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from components.conda import CondaFileError, conda_document, read_conda_file
from v1import.docker_steps import DOCKERFILE_WORDS, split_steps
from v1import.documents import V1ImportError, read_document, section, unknown_keys
from v1import.report import Report
from v1import.tree import Sourced, put

LEGACY = ("runtime", "condaFile", "extraDockerfileSteps", "extraDockerFileSteps", "enableGpu", "baseImage",
          "baseImageRegistry", "cudaVersion")
TOP_LEVEL = ("entryScript", "sourceDirectory", "environment", *LEGACY)
ENVIRONMENT = ("name", "version", "environmentVariables", "python", "docker", "spark", "databricks", "r",
               "inferencingStackVersion")
PYTHON = ("userManagedDependencies", "interpreterPath", "condaDependenciesFile", "condaDependencies",
          "baseCondaEnvironment")
DOCKER = ("enabled", "baseImage", "baseDockerfile", "baseImageRegistry", "sharedVolumes", "shmSize", "arguments",
          "buildContext", "platform")
# What Environment.save_to_directory wrote when a setting was left alone: nothing to carry over.
DOCKER_DEFAULTS = {"sharedVolumes": (None, True), "shmSize": (None, "2g"), "arguments": (None, []),
                   "buildContext": (None,), "platform": (None, {"os": "Linux", "architecture": "amd64"})}
REGISTRY = ("address", "username", "password", "registryIdentity")
# A CUDA base image of Azure ML's with conda, for v1's enableGpu (which picked a GPU base image for you).
GPU_BASE_IMAGE = "mcr.microsoft.com/azureml/openmpi4.1.0-cuda11.8-cudnn8-ubuntu22.04"
# Names whose values are credentials: never written into the stack file or baked into an image layer.
SECRET_NAME = re.compile(r"KEY|SECRET|PASSWORD|PASSWD|TOKEN|CONNECTION_?STRING|CREDENTIAL|SAS", re.IGNORECASE)
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass
class InferenceConfig:
    file: Path
    entry_script: Path  # absolute
    source_directory: Optional[Path]  # absolute, when v1 had one
    environment_name: Optional[str] = None
    conda_file: Optional[Path] = None  # absolute, or None when the conda spec was inline
    conda_inline: Optional[dict] = None  # environment.python.condaDependencies, to be written to a file
    conda_source: str = ""
    environment: dict = field(default_factory=dict)  # baseImage, dockerSteps (tree of Sourced)


def read_inference_config(path: Path, report: Report) -> InferenceConfig:
    document = read_document(path)
    env = section(document, "environment", path)
    problems = unknown_keys(document, TOP_LEVEL, path) + unknown_keys(env, ENVIRONMENT, path, "environment.")
    problems += unknown_keys(section(env, "python", path), PYTHON, path, "environment.python.")
    docker = section(env, "docker", path)
    problems += unknown_keys(docker, DOCKER, path, "environment.docker.")
    problems += unknown_keys(_registry(docker.get("baseImageRegistry")), REGISTRY, path,
                             "environment.docker.baseImageRegistry.")
    problems += unknown_keys(_registry(document.get("baseImageRegistry")), REGISTRY, path, "baseImageRegistry.")
    if env and (legacy := [k for k in LEGACY if document.get(k) not in (None, False)]):
        problems.append(f"{path}: {legacy[0]}: not together with environment (v1 refused both; the environment "
                        f"holds the conda file, base image and Docker steps)")
    if not document.get("entryScript"):
        problems.append(f"{path}: entryScript: required (the score.py with init() and run())")
    if problems:
        raise V1ImportError(problems)
    base = path.parent.resolve()
    source_dir = (base / local_path(document["sourceDirectory"])).resolve() if document.get("sourceDirectory") else None
    root = source_dir or base
    config = InferenceConfig(path, (root / local_path(document["entryScript"])).resolve(), source_dir,
                             environment_name=env.get("name"))
    if source_dir is not None and not source_dir.is_dir():
        raise V1ImportError([f"{path}: sourceDirectory: no folder {source_dir}"])
    if not config.entry_script.is_file():
        raise V1ImportError([f"{path}: entryScript: no file {config.entry_script}"])
    if env:
        _read_environment(env, root, config, report)
    else:
        _read_legacy(document, root, config, report)
    if config.conda_file is None and config.conda_inline is None:
        raise V1ImportError([f"{path}: {'environment.python.condaDependencies' if env else 'condaFile'}: no conda "
                             "dependencies given; this project builds every environment from a conda file (v1's "
                             "Environment.save_to_directory writes one for a registered or curated environment)"])
    _check_conda(config)
    return config


def _check_conda(config: InferenceConfig) -> None:
    """The conda file read as the image build and `make run` will read it (components.conda)."""
    try:
        if config.conda_file is not None:
            read_conda_file(config.conda_file)
        else:  # the inline spec as it is: the file it becomes is written only once the stack loads
            conda_document(config.conda_inline, config.file)
    except CondaFileError as err:
        problem = str(err) if config.conda_file is not None else err.rule
        raise V1ImportError([f"{config.file}: {config.conda_source.split(': ', 1)[1]}: {problem}"]) from None


def local_path(value: str) -> str:
    """A path as the inference config wrote it, on this machine: v1 ran on Windows too (`.\\src\\score.py`)."""
    return str(value).replace("\\", "/")


def _registry(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _read_legacy(document: dict, root: Path, config: InferenceConfig, report: Report) -> None:
    name = config.file.name
    runtime = document.get("runtime")
    if runtime is not None and str(runtime).lower() != "python":
        raise V1ImportError([f"{config.file}: runtime: {runtime!r}; only python can be served (spark-py was "
                             "retired in v1 itself)"])
    if document.get("condaFile"):
        config.conda_file = _existing(root / local_path(document["condaFile"]), config.file, "condaFile")
        config.conda_source = f"{name}: condaFile"
    steps_key = _steps_key(document, config.file)
    if steps_key:
        _read_steps(root, document[steps_key], f"{name}: {steps_key}", config, report)
    image = _base_image(document.get("baseImage"), document.get("baseImageRegistry"), f"{name}: baseImage",
                        "baseImageRegistry", report)
    if document.get("enableGpu") and image is None and document.get("baseImage") is None:
        image = GPU_BASE_IMAGE
        report.note(f"{name}: enableGpu", f"v1 picked a CUDA base image; this stack uses {GPU_BASE_IMAGE} "
                                          "(GPUs come from the deployment config's gpuCores)")
    put(config.environment, "baseImage", image, f"{name}: baseImage" if document.get("baseImage") else
        f"{name}: enableGpu")
    if document.get("cudaVersion"):
        report.skip(f"{name}: cudaVersion", "the CUDA version is the base image's "
                                            f"({GPU_BASE_IMAGE if image == GPU_BASE_IMAGE else 'baseImage'})")


def _steps_key(document: dict, file: Path) -> Optional[str]:
    """v1 read `extraDockerfileSteps`; older docs wrote `extraDockerFileSteps`: either, not two different."""
    given = [k for k in ("extraDockerfileSteps", "extraDockerFileSteps") if document.get(k)]
    if len(given) == 2 and document[given[0]] != document[given[1]]:
        raise V1ImportError([f"{file}: extraDockerFileSteps: differs from extraDockerfileSteps; give one"])
    return given[0] if given else None


def _read_environment(env: dict, root: Path, config: InferenceConfig, report: Report) -> None:
    name, python, docker = config.file.name, env.get("python") or {}, env.get("docker") or {}
    if env.get("version") is not None:
        report.note(f"{name}: environment.version", f"{env['version']} has no key here: an environment image is "
                                                    "named by what it is built from (a hash), not by a version")
    if python.get("condaDependenciesFile") and python.get("condaDependencies"):
        raise V1ImportError([f"{config.file}: environment.python.condaDependenciesFile: not together with "
                             "condaDependencies; give one"])
    if python.get("condaDependenciesFile"):
        config.conda_file = _existing(root / local_path(python["condaDependenciesFile"]), config.file,
                                      "environment.python.condaDependenciesFile")
        config.conda_source = f"{name}: environment.python.condaDependenciesFile"
    elif python.get("condaDependencies"):
        config.conda_inline = python["condaDependencies"]
        config.conda_source = f"{name}: environment.python.condaDependencies"
    if python.get("userManagedDependencies"):
        report.skip(f"{name}: environment.python.userManagedDependencies",
                    "this project always builds the conda file into an environment of its own; the Python and "
                    "packages you installed in the base image yourself are not used"
                    + (f" (interpreterPath {python['interpreterPath']} neither)" if python.get("interpreterPath")
                       else ""))
    if python.get("baseCondaEnvironment"):
        report.skip(f"{name}: environment.python.baseCondaEnvironment",
                    "an environment is built from its conda file alone; list the base environment's packages in it")
    _read_env_variables(env.get("environmentVariables") or {}, config, report)
    _read_docker(docker, config, report)
    for key in ("spark", "databricks", "r"):
        if _has_content(env.get(key)):
            report.skip(f"{name}: environment.{key}", f"{key} packages are for v1 training runs, not for serving")


def _read_docker(docker: dict, config: InferenceConfig, report: Report) -> None:
    name = config.file.name
    if docker.get("baseDockerfile"):
        report.skip(f"{name}: environment.docker.baseDockerfile",
                    "an environment is built on a base image, not from a Dockerfile; build and push your Dockerfile "
                    "(it must carry conda) and give the image as baseImage; the default base image is used")
    image = _base_image(docker.get("baseImage"), docker.get("baseImageRegistry"),
                        f"{name}: environment.docker.baseImage", "environment.docker.baseImageRegistry", report)
    put(config.environment, "baseImage", image, f"{name}: environment.docker.baseImage")
    for key, why in (("sharedVolumes", "pods get their volumes from Kubernetes"),
                     ("shmSize", "/dev/shm is the container runtime's default size on AKS"),
                     ("arguments", "the container is started by Kubernetes, not by `docker run`"),
                     ("buildContext", "the image's build context is made by this project"),
                     ("platform", "images are built for linux/amd64, the node pools' platform")):
        if docker.get(key) not in DOCKER_DEFAULTS[key]:
            report.skip(f"{name}: environment.docker.{key}", why)


def _read_env_variables(variables: dict, config: InferenceConfig, report: Report) -> None:
    """The stack schema has no environment-variable key; an ENV Docker step puts a variable in the image."""
    name = config.file.name
    steps = []
    for var, value in variables.items():
        source = f"{name}: environment.environmentVariables.{var}"
        if not ENV_NAME.match(str(var)):
            report.skip(source, "not a valid environment variable name")
        elif SECRET_NAME.search(str(var)):
            report.skip(source, "looks like a credential; it would sit in the stack file and in an image layer in "
                                "clear text. Read it at init() from a mounted secret instead")
        else:
            steps.append(f"ENV {var}={json.dumps(str(value))}")
    if steps:
        _add_steps(config, steps, f"{name}: environment.environmentVariables")
        report.note(f"{name}: environment.environmentVariables",
                    "the stack schema has no key for environment variables, so they are ENV lines in dockerSteps: "
                    "the image (and so every pod on the cluster) has them; `make run` does not apply Docker steps, "
                    "so locally they are unset")


def _read_steps(root: Path, value: str, source: str, config: InferenceConfig, report: Report) -> None:
    """v1 took a file of Dockerfile lines; some published configs put the lines themselves in the key."""
    path = root / local_path(value)
    if path.is_file():
        text, source = path.read_text(), f"{source} ({path.name})"
    elif str(value).split(None, 1)[0].upper() in DOCKERFILE_WORDS:
        text = str(value)
        report.note(source, "holds Dockerfile lines, not a file name (v1 read a file); read as the lines")
    else:
        raise V1ImportError([f"{config.file}: {source.split(': ', 1)[1]}: no file {path}"])
    carried, refused = split_steps(text)
    for line, why in refused:
        report.skip(source, f"`{line}`: {why}")
    if carried:
        _add_steps(config, carried, source)


def _add_steps(config: InferenceConfig, steps: list[str], source: str) -> None:
    existing = config.environment.get("dockerSteps")
    lines = (existing.value if existing else []) + [Sourced(s, source) for s in steps]
    config.environment["dockerSteps"] = Sourced(lines, None)


def _base_image(image: Optional[str], registry: Any, source: str, registry_key: str, report: Report) -> Optional[str]:
    """The base image, or None when it cannot be pulled: a registry given with credentials is private."""
    if not image:
        return None
    registry = _registry(registry)
    address = registry.get("address")
    full = image if not address or image.startswith(f"{address}/") else f"{address}/{image}"
    if registry.get("username") or registry.get("password") or registry.get("registryIdentity"):
        report.skip(source, f"{full} sits in a private registry ({registry_key} has credentials), which this build "
                            "cannot log in to; push the image to the workspace registry or give that registry as "
                            "workspace.globalRegistry, then set environments.<name>.baseImage; the default base "
                            "image is used meanwhile (credentials are never copied into the stack)")
        return None
    return full


def _existing(path: Path, file: Path, key: str) -> Path:
    if not path.is_file():
        raise V1ImportError([f"{file}: {key}: no file {path}"])
    return path.resolve()


def _has_content(value: Any) -> bool:
    if isinstance(value, dict):
        return any(isinstance(v, list) and v for v in value.values())
    return bool(value)

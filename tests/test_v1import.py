"""`python -m v1import`: v1 deployment files (shapes of the v1 docs' and azureml-core's own) become a stack file
that load_stack_file accepts, with every key carried or named in the report, and no secret in the file."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from components.config import ConfigError, load_stack_file
from v1import.__main__ import main

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "models" / "v1-deployment"
PRIMARY, SECONDARY = "v1-primary-key-0f9a8b7c6d5e4f3a", "v1-secondary-key-1a2b3c4d5e6f7a8b"

# Every AKS key azureml-core's deploy_config_dict_to_obj read, at values unlike this project's defaults.
FULL_AKS = {
    "computeType": "AKS",
    "computeTargetName": "myaks",
    "autoScaler": {"autoscaleEnabled": False, "minReplicas": 2, "maxReplicas": 5, "refreshPeriodInSeconds": 3,
                   "targetUtilization": 60},
    "containerResourceRequirements": {"cpu": 0.5, "memoryInGB": 1.5, "cpuLimit": 1.0, "memoryInGBLimit": 2.0},
    "gpuCores": 1,
    "authEnabled": False,
    "tokenAuthEnabled": True,
    "appInsightsEnabled": True,
    "dataCollection": {"storageEnabled": True},
    "scoringTimeoutMs": 30000,
    "maxConcurrentRequestsPerContainer": 4,
    "maxQueueWaitMs": 900,
    "numReplicas": 3,
    "keys": {"primaryKey": PRIMARY, "secondaryKey": SECONDARY},
    "livenessProbeRequirements": {"periodSeconds": 20, "initialDelaySeconds": 60, "timeoutSeconds": 5,
                                  "successThreshold": 2, "failureThreshold": 6},
    "namespace": "scoring",
}
# The v1 docs' legacy inference config shape (runtime, condaFile, extraDockerfileSteps, ...).
LEGACY_IC = {"entryScript": "score.py", "runtime": "python", "condaFile": "conda.yml", "extraDockerfileSteps": None,
             "sourceDirectory": None, "enableGpu": False, "baseImage": None, "baseImageRegistry": None}
STEPS = """# steps v1 appended to its Dockerfile
RUN apt-get update && \\
    apt-get install -y --no-install-recommends libgomp1
ENV OMP_NUM_THREADS=1
COPY extra.txt /opt/extra.txt
USER 1000
CMD ["python", "app.py"]
"""


def project(tmp_path: Path, dc: dict, ic: dict, dc_name: str = "deploymentconfig.json",
            ic_name: str = "inferenceconfig.json") -> Path:
    """A v1 deployment folder like models/v1-deployment, with the given configs, in a project folder."""
    folder = tmp_path / "v1"
    folder.mkdir()
    for name in ("score.py", "conda.yml", "sample-request.json"):
        shutil.copy(SAMPLE / name, folder / name)
    shutil.copytree(SAMPLE / "model", folder / "model")
    for name, document in ((dc_name, dc), (ic_name, ic)):
        text = yaml.safe_dump(document) if name.endswith(".yml") else json.dumps(document, indent=4)
        (folder / name).write_text(text)
    return folder


def run(tmp_path: Path, folder: Path, *extra: str, stack: str = "imported", dc: str = "deploymentconfig.json",
        ic: str = "inferenceconfig.json", out: bool = True) -> int:
    args = ["--deployment-config", str(folder / dc), "--inference-config", str(folder / ic),
            "--model", f"sklearn_regression_model.pkl:1={folder / 'model' / 'sklearn_regression_model.pkl'}",
            "--stack", stack, "--service", "sklearn-svc", "--location", "westeurope", *extra]
    if out and "--merge" not in extra:
        args += ["--out", str(tmp_path / f"Pulumi.{stack}.yaml")]
    return main(args)


def test_the_shipped_sample_becomes_a_stack_that_loads(tmp_path, capsys):
    shutil.copytree(SAMPLE, tmp_path / "v1-deployment")
    folder = tmp_path / "v1-deployment"
    assert main(["--deployment-config", str(folder / "deploymentconfig.json"),
                 "--inference-config", str(folder / "inferenceconfig.json"),
                 "--model", f"sklearn_regression_model.pkl:1={folder / 'model/sklearn_regression_model.pkl'}",
                 "--compute", str(folder / "aks-compute.json"), "--stack", "v1import",
                 "--service", "sklearn-regression", "--out", str(tmp_path / "Pulumi.v1import.yaml")]) == 0
    cfg = load_stack_file(tmp_path / "Pulumi.v1import.yaml")
    service = cfg.services["sklearn-regression"]
    assert (service.cpu_cores, service.memory_gb, service.collect_model_data) == (0.5, 1.0, True)
    assert (service.autoscale.max_replicas, service.liveness_probe.initial_delay_seconds) == (3, 310)
    assert service.entry_script == "v1-deployment/score.py" and service.source_directory == "v1-deployment"
    assert [(m.name, m.version, m.path) for m in service.models] == [
        ("sklearn_regression_model.pkl", 1, "v1-deployment/model/sklearn_regression_model.pkl")]
    assert cfg.environments[service.environment].conda_file == "v1-deployment/conda.yml"
    assert (cfg.cluster.name, cfg.cluster.purpose, cfg.cluster.node_count) == ("myaks", "dev-test", 1)
    assert cfg.workspace.location == "westeurope"
    text = (tmp_path / "Pulumi.v1import.yaml").read_text()
    assert "cpuCores: 0.5  # from deploymentconfig.json: containerResourceRequirements.cpu" in text
    assert "nodeCount: 1  # from aks-compute.json: provisioning_configuration.agent_count" in text


@pytest.mark.parametrize("dc_name, ic_name", [("deploymentconfig.json", "inferenceconfig.json"),
                                               ("deploymentconfig.yml", "inferenceconfig.yml")])
def test_every_deploymentconfig_key_is_carried(tmp_path, capsys, dc_name, ic_name):
    folder = project(tmp_path, FULL_AKS, LEGACY_IC, dc_name=dc_name, ic_name=ic_name)
    assert run(tmp_path, folder, "--description", "ridge", "--tag", "team=ml", "--property", "v1=yes",
               dc=dc_name, ic=ic_name) == 0
    cfg = load_stack_file(tmp_path / "Pulumi.imported.yaml")
    s = cfg.services["sklearn-svc"]
    assert (s.autoscale.enabled, s.autoscale.min_replicas, s.autoscale.max_replicas, s.autoscale.refresh_seconds,
            s.autoscale.target_utilization) == (False, 2, 5, 3, 60)
    assert (s.cpu_cores, s.memory_gb, s.cpu_cores_limit, s.memory_gb_limit, s.gpu_cores) == (0.5, 1.5, 1.0, 2.0, 1)
    assert (s.auth_enabled, s.token_auth_enabled, s.enable_app_insights, s.collect_model_data) == (False, True, True, True)
    assert (s.scoring_timeout_ms, s.replica_max_concurrent_requests, s.max_request_wait_time_ms, s.num_replicas) == (
        30000, 4, 900, 3)
    p = s.liveness_probe
    assert (p.period_seconds, p.initial_delay_seconds, p.timeout_seconds, p.success_threshold,
            p.failure_threshold) == (20, 60, 5, 2, 6)
    assert s.namespace == "scoring" and cfg.cluster.name == "myaks"
    assert (s.description, s.tags, s.properties) == ("ridge", {"team": "ml"}, {"v1": "yes"})
    # gpuCores with no compute file: a GPU pool is added so the placement rule holds, and the report says so.
    assert [p.vm_size for p in cfg.cluster.node_pools] == ["Standard_NC4as_T4_v3"]
    assert "a Standard_NC4as_T4_v3 pool named gpu is added" in capsys.readouterr().out


def test_gpu_in_resources_and_numreplicas_zero(tmp_path, capsys):
    folder = project(tmp_path, {"computeType": "aks", "numReplicas": 0,
                                "containerResourceRequirements": {"cpu": 1, "memoryInGB": 4, "gpu": 1}}, LEGACY_IC)
    assert run(tmp_path, folder) == 0
    s = load_stack_file(tmp_path / "Pulumi.imported.yaml").services["sklearn-svc"]
    assert (s.gpu_cores, s.num_replicas, s.autoscale_enabled) == (1, None, True)
    assert "numReplicas: 0 meant 'autoscale' in v1" in capsys.readouterr().out

    (folder / "deploymentconfig.json").write_text(json.dumps(
        {"computeType": "aks", "gpuCores": 2, "containerResourceRequirements": {"gpu": 1}}))
    assert run(tmp_path, folder, stack="other") == 1
    assert "containerResourceRequirements.gpu: 1 differs from gpuCores 2" in capsys.readouterr().err


def test_description_tags_properties_in_the_file_point_at_the_options(tmp_path, capsys):
    folder = project(tmp_path, {"computeType": "aks", "tags": {"a": "b"}}, LEGACY_IC)
    assert run(tmp_path, folder) == 1
    assert "deploymentconfig.json: tags: az ml took it as an option, not from the file; give it as --tag" in \
        capsys.readouterr().err


def test_keys_are_never_written_and_the_commands_read_them_from_the_file(tmp_path, capsys):
    folder = project(tmp_path, {"computeType": "aks", "keys": {"primaryKey": PRIMARY, "secondaryKey": SECONDARY}},
                     LEGACY_IC)
    assert run(tmp_path, folder) == 0
    out = capsys.readouterr().out
    text = (tmp_path / "Pulumi.imported.yaml").read_text()
    assert PRIMARY not in text and SECONDARY not in text and PRIMARY not in out and SECONDARY not in out
    commands = [line.strip() for line in out.splitlines() if "pulumi config set" in line and "--secret" in line]
    assert len(commands) == 2
    assert commands[0].endswith("--secret --path 'aks-serving:services.sklearn-svc.keys.primaryKey'")
    # The command's left half pipes the value out of the v1 file, the way a user runs it.
    reader = commands[0].split(" | ")[0].split()[3:]
    piped = subprocess.run([sys.executable, "-m", "v1import.read_key", *reader], cwd=Path.cwd(), capture_output=True,
                           text=True, check=True)
    assert piped.stdout == PRIMARY
    assert load_stack_file(tmp_path / "Pulumi.imported.yaml").services["sklearn-svc"].keys.primary_key is None


def test_read_key_refuses_a_terminal(tmp_path):
    import pty
    (tmp_path / "dc.json").write_text(json.dumps({"keys": {"primaryKey": PRIMARY}}))
    leader, follower = pty.openpty()
    result = subprocess.run([sys.executable, "-m", "v1import.read_key", str(tmp_path / "dc.json"), "keys.primaryKey"],
                            cwd=REPO, stdout=follower, stderr=subprocess.PIPE, text=True)
    assert result.returncode == 2 and "refusing to print a secret to a terminal" in result.stderr


def test_aksendpoint_becomes_an_endpoint_version(tmp_path, capsys):
    dc = {"computeType": "AKSENDPOINT", "versionName": "versiona", "trafficPercentile": 20, "authEnabled": True,
          "keys": {"primaryKey": PRIMARY}, "containerResourceRequirements": {"cpu": 0.2, "memoryInGB": 0.5}}
    folder = project(tmp_path, dc, LEGACY_IC)
    assert run(tmp_path, folder) == 0
    endpoint = load_stack_file(tmp_path / "Pulumi.imported.yaml").endpoints["sklearn-svc"]
    assert endpoint.auth_enabled is True
    assert endpoint.versions["versiona"].traffic_percentile == 20 and endpoint.versions["versiona"].cpu_cores == 0.2
    assert "'aks-serving:endpoints.sklearn-svc.keys.primaryKey'" in capsys.readouterr().out


def test_endpoint_keys_on_an_aks_service_are_refused(tmp_path, capsys):
    folder = project(tmp_path, {"computeType": "aks", "versionName": "v2", "trafficPercentile": 10}, LEGACY_IC)
    assert run(tmp_path, folder) == 1
    err = capsys.readouterr().err
    assert "deploymentconfig.json: versionName: only for computeType AKSENDPOINT" in err
    assert "trafficPercentile: only for computeType AKSENDPOINT" in err
    assert not (tmp_path / "Pulumi.imported.yaml").exists()


@pytest.mark.parametrize("dc, ic, expected", [
    ({"computeType": "aks", "autoscaler": {"minReplicas": 1}}, LEGACY_IC,
     "deploymentconfig.json: autoscaler: unknown key (v1 did not read it); did you mean autoScaler?"),
    ({"computeType": "aks", "containerResourceRequirements": {"memoryInGb": 1}}, LEGACY_IC,
     "deploymentconfig.json: containerResourceRequirements.memoryInGb: unknown key (v1 did not read it); "
     "did you mean containerResourceRequirements.memoryInGB?"),
    ({"computeType": "aks", "livenessProbeRequirements": {"periodSecond": 5}}, LEGACY_IC,
     "did you mean livenessProbeRequirements.periodSeconds?"),
    ({"computeType": "aks"}, {**LEGACY_IC, "entryscript": "score.py"},
     "inferenceconfig.json: entryscript: unknown key (v1 did not read it); did you mean entryScript?"),
    ({"computeType": "aks"}, {"entryScript": "score.py", "environment": {"python": {"condaDependencyFile": "x"}}},
     "inferenceconfig.json: environment.python.condaDependencyFile: unknown key (v1 did not read it); did you mean "
     "environment.python.condaDependenciesFile?"),
    ({"computeType": "ACI"}, LEGACY_IC, "computeType: 'ACI'; this tool brings AKS deployments over"),
    ({"authEnabled": True}, LEGACY_IC, "computeType: required (AKS or AKSENDPOINT)"),
    # A public sample's spelling, and the SDK's parameter names: az ml ignored both, silently.
    ({"computeType": "aks", "enableAppInsights": "True"}, LEGACY_IC,
     "deploymentconfig.json: enableAppInsights: unknown key (v1 did not read it); did you mean appInsightsEnabled?"),
    ({"computeType": "aks", "cpu_cores": 1}, LEGACY_IC,
     "cpu_cores: unknown key (v1 did not read it); did you mean containerResourceRequirements.cpu?"),
])
def test_unknown_keys_name_the_file_and_the_nearest_v1_key(tmp_path, capsys, dc, ic, expected):
    folder = project(tmp_path, dc, ic)
    assert run(tmp_path, folder) == 1
    err = capsys.readouterr().err
    assert expected in err and str(folder) in err
    assert not (tmp_path / "Pulumi.imported.yaml").exists()


@pytest.mark.parametrize("spelling", ["extraDockerfileSteps", "extraDockerFileSteps"])
def test_both_extra_docker_steps_spellings(tmp_path, capsys, spelling):
    folder = project(tmp_path, {"computeType": "aks"},
                     {**LEGACY_IC, "extraDockerfileSteps": None, spelling: "docker-steps.txt"})
    (folder / "docker-steps.txt").write_text(STEPS)
    assert run(tmp_path, folder) == 0
    env = next(iter(load_stack_file(tmp_path / "Pulumi.imported.yaml").environments.values()))
    assert env.docker_steps == ["RUN apt-get update && apt-get install -y --no-install-recommends libgomp1",
                                "ENV OMP_NUM_THREADS=1"]
    out = capsys.readouterr().out
    not_carried = out.split("Not carried over")[1]
    assert f"inferenceconfig.json: {spelling} (docker-steps.txt): `COPY extra.txt /opt/extra.txt`: the build " \
           "context holds the conda file" in not_carried
    assert "`USER 1000`: the build's own steps after yours run as root" in not_carried
    assert '`CMD ["python", "app.py"]`: the image starts the inference server itself' in not_carried


def test_extra_docker_steps_written_inline_are_read_as_lines(tmp_path, capsys):
    # The shape of a published config that put the Dockerfile line itself in the key (v1 read a file name).
    folder = project(tmp_path, {"computeType": "aks"}, {"entryScript": "score.py", "runtime": "python",
                     "condaFile": "conda.yml", "extraDockerFileSteps": "RUN apt-get update && apt-get install -y libgl1"})
    assert run(tmp_path, folder) == 0
    env = next(iter(load_stack_file(tmp_path / "Pulumi.imported.yaml").environments.values()))
    assert env.docker_steps == ["RUN apt-get update && apt-get install -y libgl1"]
    assert "extraDockerFileSteps: holds Dockerfile lines, not a file name" in capsys.readouterr().out

    (folder / "inferenceconfig.json").write_text(json.dumps({**LEGACY_IC, "extraDockerfileSteps": "missing.txt"}))
    assert run(tmp_path, folder, stack="other") == 1
    assert "inferenceconfig.json: extraDockerfileSteps: no file" in capsys.readouterr().err


def test_the_v1_docs_example_deployment_config(tmp_path, capsys):
    # Verbatim the AKS example of the v1 docs (how-to-deploy-and-where, "deploymentconfig.json").
    docs = {"computeType": "aks",
            "autoScaler": {"autoscaleEnabled": True, "minReplicas": 1, "maxReplicas": 3, "refreshPeriodInSeconds": 1,
                           "targetUtilization": 70},
            "dataCollection": {"storageEnabled": True}, "authEnabled": True,
            "containerResourceRequirements": {"cpu": 0.5, "memoryInGB": 1.0}}
    folder = project(tmp_path, docs, LEGACY_IC)
    assert run(tmp_path, folder) == 0
    s = load_stack_file(tmp_path / "Pulumi.imported.yaml").services["sklearn-svc"]
    assert (s.autoscale_enabled, s.autoscale.max_replicas, s.collect_model_data, s.auth_mode, s.cpu_cores) == (
        True, 3, True, "key", 0.5)


def test_problems_of_every_input_come_together(tmp_path, capsys):
    folder = project(tmp_path, {"computeType": "aks", "autoscaler": {}}, {**LEGACY_IC, "entryscript": "score.py"})
    assert run(tmp_path, folder, "--tag", "novalue") == 1
    err = capsys.readouterr().err
    assert "deploymentconfig.json: autoscaler: unknown key" in err and "inferenceconfig.json: entryscript: unknown" in err
    assert "--tag novalue: must be KEY=VALUE" in err


def test_two_different_extra_docker_steps_files_are_refused(tmp_path, capsys):
    folder = project(tmp_path, {"computeType": "aks"},
                     {**LEGACY_IC, "extraDockerfileSteps": "a.txt", "extraDockerFileSteps": "b.txt"})
    assert run(tmp_path, folder) == 1
    assert "extraDockerFileSteps: differs from extraDockerfileSteps; give one" in capsys.readouterr().err


def test_what_cannot_be_carried_is_reported(tmp_path, capsys):
    ic = {"entryScript": "score.py", "sourceDirectory": ".", "environment": {
        "name": "private-env", "version": "3",
        "environmentVariables": {"MODEL_MODE": "fast", "STORAGE_KEY": "do-not-copy-me"},
        "python": {"userManagedDependencies": True, "interpreterPath": "/opt/py/bin/python",
                   "condaDependenciesFile": "conda.yml", "baseCondaEnvironment": None},
        "docker": {"enabled": True, "baseImage": "myregistry.azurecr.io/ml/base:1", "baseDockerfile": "FROM ubuntu",
                   "sharedVolumes": True, "shmSize": "8g", "arguments": [],
                   "baseImageRegistry": {"address": "myregistry.azurecr.io", "username": "puller",
                                         "password": "registry-password-9"}},
        "spark": {"repositories": [], "packages": [{"group": "g", "artifact": "a", "version": "1"}],
                  "precachePackages": True}}}
    folder = project(tmp_path, {"computeType": "aks"}, ic)
    assert run(tmp_path, folder) == 0
    out = capsys.readouterr().out
    text = (tmp_path / "Pulumi.imported.yaml").read_text()
    for secret in ("registry-password-9", "puller", "do-not-copy-me"):
        assert secret not in text and secret not in out
    env = load_stack_file(tmp_path / "Pulumi.imported.yaml").environments["private-env"]
    assert env.base_image == "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04"  # the default: the private one cannot be pulled
    assert env.docker_steps == ['ENV MODEL_MODE="fast"']
    not_carried = out.split("Not carried over")[1].split("Carried differently")[0]
    for line in ("environment.docker.baseImage: myregistry.azurecr.io/ml/base:1 sits in a private registry",
                 "environment.python.userManagedDependencies: this project always builds the conda file",
                 "(interpreterPath /opt/py/bin/python neither)",
                 "environment.environmentVariables.STORAGE_KEY: looks like a credential",
                 "environment.docker.baseDockerfile: an environment is built on a base image",
                 "environment.docker.shmSize:", "environment.spark: spark packages are for v1 training runs"):
        assert line in not_carried, line
    assert "environment.environmentVariables: the stack schema has no key for environment variables, so they are " \
           "ENV lines in dockerSteps" in out


def test_legacy_keys_enable_gpu_base_image_and_inline_conda(tmp_path, capsys):
    folder = project(tmp_path, {"computeType": "aks"}, {**LEGACY_IC, "enableGpu": True, "cudaVersion": "10.1"})
    assert run(tmp_path, folder) == 0
    env = next(iter(load_stack_file(tmp_path / "Pulumi.imported.yaml").environments.values()))
    assert env.base_image == "mcr.microsoft.com/azureml/openmpi4.1.0-cuda11.8-cudnn8-ubuntu22.04"
    assert "cudaVersion: the CUDA version is the base image's" in capsys.readouterr().out

    inline = {"entryScript": "score.py", "environment": {"name": "inline", "python": {
        "condaDependencies": {"channels": ["conda-forge"], "dependencies": [
            "python=3.8.13", {"pip": ["azureml-defaults", "scikit-learn==0.22.1"]}], "name": "project_environment"},
        "condaDependenciesFile": None, "userManagedDependencies": False}}}
    (folder / "inferenceconfig.json").write_text(json.dumps(inline))
    assert run(tmp_path, folder, stack="inline") == 0
    env = load_stack_file(tmp_path / "Pulumi.inline.yaml").environments["inline"]
    written = yaml.safe_load((tmp_path / env.conda_file).read_text())
    assert env.conda_file == "v1-inline/inline.conda.yml" and written["dependencies"][0] == "python=3.8.13"


def test_a_conda_file_the_build_cannot_read_is_named_with_its_key(tmp_path, capsys):
    folder = project(tmp_path, {"computeType": "aks"}, LEGACY_IC)
    (folder / "conda.yml").write_text("dependencies:\n  - python=3.8\n  - {conda: [numpy]}\n")
    assert run(tmp_path, folder) == 1
    err = capsys.readouterr().err
    assert "inferenceconfig.json: condaFile: " in err and "cannot read the dependency {'conda': ['numpy']}" in err

    inline = {"entryScript": "score.py", "environment": {"python": {"condaDependencies": ["not", "a", "mapping"]}}}
    (folder / "inferenceconfig.json").write_text(json.dumps(inline))
    assert run(tmp_path, folder, stack="inline") == 1
    assert "environment.python.condaDependencies: " in capsys.readouterr().err


def test_files_written_on_windows_byte_order_mark_and_backslashes(tmp_path, capsys):
    folder = project(tmp_path, {"computeType": "aks"}, {})
    (folder / "src").mkdir()
    shutil.move(folder / "score.py", folder / "src" / "score.py")
    (folder / "inferenceconfig.json").write_text(json.dumps(
        {"entryScript": "score.py", "sourceDirectory": ".\\src", "condaFile": "..\\conda.yml"}), encoding="utf-8-sig")
    (folder / "deploymentconfig.json").write_text(json.dumps({"computeType": "aks", "numReplicas": 2}),
                                                  encoding="utf-8-sig")
    assert run(tmp_path, folder) == 0
    s = load_stack_file(tmp_path / "Pulumi.imported.yaml").services["sklearn-svc"]
    assert (s.entry_script, s.source_directory, s.num_replicas) == ("v1/src/score.py", "v1/src", 2)


def test_environment_and_legacy_keys_together_are_refused(tmp_path, capsys):
    folder = project(tmp_path, {"computeType": "aks"},
                     {"entryScript": "score.py", "condaFile": "conda.yml", "environment": {"name": "e"}})
    assert run(tmp_path, folder) == 1
    assert "condaFile: not together with environment" in capsys.readouterr().err


def test_a_stack_that_would_not_load_is_never_written(tmp_path, capsys):
    folder = project(tmp_path, {"computeType": "aks", "containerResourceRequirements": {"cpu": 2, "cpuLimit": 1}},
                     LEGACY_IC)
    assert run(tmp_path, folder) == 1
    assert "the stack would not load: services.sklearn-svc.cpuCoresLimit: must be >= cpuCores (2.0) (from " \
           "deploymentconfig.json: containerResourceRequirements.cpuLimit)" in capsys.readouterr().err
    assert not (tmp_path / "Pulumi.imported.yaml").exists()


def test_merge_adds_the_service_and_keeps_every_other_key(tmp_path, capsys):
    folder = project(tmp_path, {"computeType": "aks", "keys": {"primaryKey": PRIMARY}}, LEGACY_IC)
    existing = tmp_path / "Pulumi.dev.yaml"
    original = """# my dev stack: hand-written
encryptionsalt: v1:abc:def
config:
  azure-native:location: northeurope
  aks-serving:workspace:
    name: mlw-dev   # ours
    location: northeurope
  aks-serving:cluster:
    name: aks-dev
    purpose: dev-test
    nodeCount: 1
    vmSize: Standard_D4s_v3
  aks-serving:environments:
    mine: {condaFile: v1/conda.yml}
  aks-serving:services:
    # my own service
    mine:
      environment: mine
      entryScript: v1/score.py
      keys:
        primaryKey:
          secure: v1:AAAA
"""
    existing.write_text(original)
    assert run(tmp_path, folder, "--merge", str(existing), "--compute", str(_compute(tmp_path))) == 0
    merged = existing.read_text()
    lines = iter(merged.splitlines())
    assert all(line in lines for line in original.splitlines())  # every original line, in order
    cfg = load_stack_file(existing)
    assert set(cfg.services) == {"mine", "sklearn-svc"} and set(cfg.environments) == {"mine", "sklearn-svc"}
    assert cfg.cluster.name == "aks-dev" and cfg.workspace.name == "mlw-dev"  # theirs, not the compute file's
    assert "services.mine.keys.primaryKey" in cfg.unset_secrets and PRIMARY not in merged
    assert "aks-serving:cluster: kept as it is" in capsys.readouterr().out

    # A second import of the same service would overwrite theirs: refused, file unchanged.
    assert run(tmp_path, folder, "--merge", str(existing)) == 1
    assert "services.sklearn-svc: already defined" in capsys.readouterr().err
    assert existing.read_text() == merged


def test_merge_without_a_compute_file_leaves_workspace_and_cluster_unmentioned(tmp_path, capsys):
    folder = project(tmp_path, {"computeType": "aks"}, LEGACY_IC)
    existing = tmp_path / "Pulumi.dev.yaml"
    existing.write_text("config:\n  aks-serving:workspace:\n    name: mlw-dev\n    location: westeurope\n"
                        "  aks-serving:cluster:\n    name: aks-dev\n")
    assert run(tmp_path, folder, "--merge", str(existing)) == 0
    out = capsys.readouterr().out
    assert "kept as it is" not in out and "no --compute file" not in out
    cfg = load_stack_file(existing)
    assert list(cfg.services) == ["sklearn-svc"] and cfg.cluster.name == "aks-dev"


def test_merge_keeps_the_files_own_indentation_and_refuses_flow_style(tmp_path, capsys):
    folder = project(tmp_path, {"computeType": "aks"}, LEGACY_IC)
    existing = tmp_path / "Pulumi.dev.yaml"
    existing.write_text("config:\n    aks-serving:workspace:\n        name: mlw-dev\n        location: westeurope\n"
                        "    aks-serving:cluster:\n        name: aks-dev\n    aks-serving:services:\n"
                        "        other:\n            environment: sklearn-svc\n            entryScript: v1/score.py\n")
    assert run(tmp_path, folder, "--merge", str(existing)) == 0
    text = existing.read_text()
    assert "\n        sklearn-svc:\n" in text and "\n    aks-serving:environments:\n" in text
    assert set(load_stack_file(existing).services) == {"other", "sklearn-svc"}

    flow = tmp_path / "Pulumi.flow.yaml"
    flow.write_text("config: {aks-serving:workspace: {name: w, location: westeurope}, aks-serving:cluster: {name: c}}\n")
    assert run(tmp_path, folder, "--merge", str(flow), stack="flow") == 1
    assert "config: written in flow style" in capsys.readouterr().err


def test_a_new_file_never_overwrites_an_existing_one(tmp_path, capsys):
    folder = project(tmp_path, {"computeType": "aks"}, LEGACY_IC)
    (tmp_path / "Pulumi.imported.yaml").write_text("config: {}\n")
    assert run(tmp_path, folder) == 1
    assert "exists; add to it with --merge" in capsys.readouterr().err
    assert (tmp_path / "Pulumi.imported.yaml").read_text() == "config: {}\n"


def _compute(tmp_path: Path, settings: dict | None = None, mode: str = "provisioning_configuration") -> Path:
    path = tmp_path / "aks.json"
    path.write_text(json.dumps({"name": "myaks", mode: settings or {"agent_count": 4, "vm_size": "Standard_D4s_v3"}}))
    return path


def _with_tls_key(stack: Path) -> Path:
    """The stack as `pulumi config set --secret --path router.tls.key` leaves it (an encrypted value)."""
    document = yaml.safe_load(stack.read_text())
    document["config"]["aks-serving:router"]["tls"]["key"] = {"secure": "v1:ENCRYPTED"}
    copy = stack.with_name("Pulumi.with-key.yaml")
    copy.write_text(yaml.safe_dump(document))
    return copy


def test_provisioning_configuration_maps_onto_cluster_and_router(tmp_path, capsys):
    folder = project(tmp_path, {"computeType": "aks"}, LEGACY_IC)
    (tmp_path / "cert.pem").write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    (tmp_path / "key.pem").write_text("-----BEGIN PRIVATE KEY-----\nTLS-KEY-MATERIAL\n-----END PRIVATE KEY-----\n")
    compute = _compute(tmp_path, {
        "agent_count": 4, "vm_size": "Standard_D4s_v3", "cluster_purpose": "FastProd", "location": "eastus",
        "vnet_resourcegroup_name": "rg-net", "vnet_name": "vnet1", "subnet_name": "aks", "service_cidr": "10.0.0.0/16",
        "dns_service_ip": "10.0.0.10", "docker_bridge_cidr": "172.17.0.1/16", "load_balancer_type": "PublicIp",
        "ssl_cname": "ml.contoso.com", "ssl_cert_pem_file": "cert.pem", "ssl_key_pem_file": "key.pem"})
    assert run(tmp_path, folder, "--compute", str(compute)) == 0
    cfg = load_stack_file(_with_tls_key(tmp_path / "Pulumi.imported.yaml"))
    c, n = cfg.cluster, cfg.cluster.network
    assert (c.node_count, c.vm_size, c.purpose, c.location) == (4, "Standard_D4s_v3", "production", "eastus")
    assert (n.vnet_resource_group, n.vnet_name, n.subnet_name, n.service_cidr, n.dns_service_ip, n.plugin) == (
        "rg-net", "vnet1", "aks", "10.0.0.0/16", "10.0.0.10", "azure")
    assert n.docker_bridge_cidr is None
    assert (cfg.router.tls.mode, cfg.router.tls.cname, cfg.router.load_balancer.type) == ("custom", "ml.contoso.com",
                                                                                       "public")
    assert cfg.router.tls.cert.startswith("-----BEGIN CERTIFICATE-----")
    out = capsys.readouterr().out
    assert "TLS-KEY-MATERIAL" not in (tmp_path / "Pulumi.imported.yaml").read_text() and "TLS-KEY-MATERIAL" not in out
    assert "--secret --path 'aks-serving:router.tls.key' < " in out and "key.pem" in out
    assert "provisioning_configuration.docker_bridge_cidr: AKS no longer has a docker bridge" in out


def test_custom_tls_loads_once_the_printed_key_command_has_run(tmp_path, capsys):
    """Custom TLS needs router.tls.key, which only the printed command sets; the secure value it leaves in the
    file is stood in for here by what `pulumi config set --secret` writes (`secure: v1:...`)."""
    folder = project(tmp_path, {"computeType": "aks"}, LEGACY_IC)
    (tmp_path / "cert.pem").write_text("CERT\n")
    (tmp_path / "key.pem").write_text("KEY\n")
    compute = _compute(tmp_path, {"agent_count": 3, "ssl_cname": "a.b.com", "ssl_cert_pem_file": "cert.pem",
                                  "ssl_key_pem_file": "key.pem"})
    assert run(tmp_path, folder, "--compute", str(compute)) == 0
    stack = tmp_path / "Pulumi.imported.yaml"
    with pytest.raises(ConfigError, match="router.tls.key: custom TLS needs cname, cert and key together"):
        load_stack_file(stack)
    assert load_stack_file(_with_tls_key(stack)).router.tls.mode == "custom"


def test_merge_keeps_the_files_router_and_asks_for_no_tls_key(tmp_path, capsys):
    folder = project(tmp_path, {"computeType": "aks"}, LEGACY_IC)
    (tmp_path / "cert.pem").write_text("CERT\n")
    (tmp_path / "key.pem").write_text("KEY\n")
    compute = _compute(tmp_path, {"agent_count": 3, "ssl_cname": "a.b.com", "ssl_cert_pem_file": "cert.pem",
                                  "ssl_key_pem_file": "key.pem"})
    existing = tmp_path / "Pulumi.dev.yaml"
    existing.write_text("config:\n  aks-serving:workspace:\n    name: mlw-dev\n    location: westeurope\n"
                        "  aks-serving:cluster:\n    name: aks-dev\n  aks-serving:router:\n    replicas: 2\n")
    assert run(tmp_path, folder, "--merge", str(existing), "--compute", str(compute)) == 0
    out = capsys.readouterr().out
    assert "router.tls.key" not in out and "aks-serving:router: kept as it is" in out
    assert load_stack_file(existing).router.tls.mode == "off"


def test_attach_configuration_internal_load_balancer_and_auto_tls(tmp_path, capsys):
    folder = project(tmp_path, {"computeType": "aks"}, LEGACY_IC)
    attach = _compute(tmp_path, {"resource_group": "rg-aks", "cluster_name": "aks-prod", "cluster_purpose": "DevTest",
                                 "load_balancer_type": "InternalLoadBalancer", "load_balancer_subnet": "ilb"},
                      mode="attach_configuration")
    assert run(tmp_path, folder, "--compute", str(attach)) == 0
    cfg = load_stack_file(tmp_path / "Pulumi.imported.yaml")
    assert (cfg.cluster.mode, cfg.cluster.resource_group, cfg.cluster.name, cfg.cluster.purpose) == (
        "attach", "rg-aks", "aks-prod", "dev-test")
    assert (cfg.router.load_balancer.type, cfg.router.load_balancer.subnet) == ("internal", "ilb")

    by_id = _compute(tmp_path, {"resource_id": "/subscriptions/0000/resourceGroups/rg/providers/"
                                               "Microsoft.ContainerService/managedClusters/aks1",
                                "leaf_domain_label": "myml", "overwrite_existing_domain": True},
                     mode="attach_configuration")
    assert run(tmp_path, folder, "--compute", str(by_id), stack="byid") == 0
    cfg = load_stack_file(tmp_path / "Pulumi.byid.yaml")
    assert cfg.cluster.resource_id.endswith("/managedClusters/aks1")
    assert (cfg.router.tls.mode, cfg.router.tls.leaf_domain_label) == ("auto", "myml")
    assert "overwrite_existing_domain: Azure gives a DNS label to one public IP at a time" in capsys.readouterr().out


def test_compute_keys_are_the_sdk_parameter_names(tmp_path, capsys):
    folder = project(tmp_path, {"computeType": "aks"}, LEGACY_IC)
    compute = _compute(tmp_path, {"agent_count": 3, "vmsize": "Standard_D3_v2", "cluster_sku": "Paid"})
    assert run(tmp_path, folder, "--compute", str(compute)) == 1
    err = capsys.readouterr().err
    assert "aks.json: provisioning_configuration.vmsize: unknown key (v1 did not read it); did you mean " \
           "provisioning_configuration.vm_size?" in err
    assert "provisioning_configuration.cluster_sku: unknown key" in err


def test_a_model_without_its_local_path_is_refused_with_the_form(tmp_path, capsys):
    folder = project(tmp_path, {"computeType": "aks"}, LEGACY_IC)
    code = main(["--deployment-config", str(folder / "deploymentconfig.json"),
                 "--inference-config", str(folder / "inferenceconfig.json"), "--model", "sklearn_regression_model.pkl:1",
                 "--stack", "x", "--location", "westeurope", "--out", str(tmp_path / "Pulumi.x.yaml")])
    assert code == 1
    assert "give the local file or folder: --model sklearn_regression_model.pkl:1=path/to/model" in capsys.readouterr().err


V1_STACK = load_stack_file(REPO / "Pulumi.v1.yaml")


@pytest.mark.parametrize("name", sorted(V1_STACK.services))
def test_the_hand_written_v1_stack_is_what_the_import_makes(tmp_path, capsys, name):
    """Each sample of Pulumi.v1.yaml, given as v1 gave it (legacy inference config, -m name:version), comes out
    as the hand-written entry (run with --dry-run so the project folder is the repository's, unwritten)."""
    hand = V1_STACK.services[name]
    folder = REPO / Path(hand.entry_script).parent
    conda = Path(V1_STACK.environments[hand.environment].conda_file)
    dc = {"computeType": "AKS", "authEnabled": False,
          **({"dataCollection": {"storageEnabled": True}} if hand.collect_model_data else {})}
    ic = {"entryScript": Path(hand.entry_script).name, "runtime": "python", "condaFile": conda.name,
          "sourceDirectory": str(folder)}
    (tmp_path / "dc.json").write_text(json.dumps(dc))
    (tmp_path / "ic.json").write_text(json.dumps(ic))
    models = [f"--model={m.name}:{m.version}={REPO / m.path}" for m in hand.models]
    assert main(["--dc", str(tmp_path / "dc.json"), "--ic", str(tmp_path / "ic.json"), *models, "--stack", "v1",
                 "--service", name, "--location", "westeurope", "--out", str(REPO / "Pulumi.v1-check.yaml"),
                 "--dry-run"]) == 0
    assert not (REPO / "Pulumi.v1-check.yaml").exists()
    lines = capsys.readouterr().out.splitlines()
    # The stack file is printed first; the warnings and the report follow it.
    end = next(i for i, line in enumerate(lines) if not line.startswith(("#", " ", "config:")))
    (tmp_path / "Pulumi.v1-check.yaml").write_text("\n".join(lines[:end]) + "\n")
    made = load_stack_file(tmp_path / "Pulumi.v1-check.yaml")
    service = made.services[name]
    assert (service.entry_script, service.models, service.collect_model_data, service.auth_enabled) == (
        hand.entry_script, hand.models, hand.collect_model_data, hand.auth_enabled)
    assert service.source_directory == str(Path(hand.entry_script).parent)  # the default the hand-written one takes
    assert made.environments[service.environment].conda_file == str(conda)


def test_a_file_that_is_neither_json_nor_yaml_is_named_without_quoting_its_lines(tmp_path, capsys):
    # PyYAML's error quotes the line it stopped at; in a deploymentconfig that line can hold a service key.
    folder = project(tmp_path, {"computeType": "aks"}, LEGACY_IC)
    broken = ('{\n  "computeType": "AKS",\n'
              f'  "keys": {{"primaryKey": "{PRIMARY}", "secondaryKey": "{SECONDARY}"\n   : : }}\n')
    (folder / "deploymentconfig.json").write_text(broken)
    assert run(tmp_path, folder) == 1
    err = capsys.readouterr().err
    assert "deploymentconfig.json: neither JSON nor YAML (line 4, column 4: expected ',' or '}', but got ':')" in err
    assert PRIMARY[:14] not in err and SECONDARY[:14] not in err  # not even the start of a key


def test_every_bad_model_and_tag_is_named_not_only_the_first(tmp_path, capsys):
    folder = project(tmp_path, {"computeType": "aks"}, LEGACY_IC)
    code = main(["--deployment-config", str(folder / "deploymentconfig.json"),
                 "--inference-config", str(folder / "inferenceconfig.json"), "--model", "first:1",
                 "--model", "second:2=missing/file.pkl", "--tag", "novalue", "--tag", "=empty-key",
                 "--stack", "x", "--location", "westeurope", "--out", str(tmp_path / "Pulumi.x.yaml")])
    err = capsys.readouterr().err
    assert code == 1
    assert "--model first:1: must be name:version=path" in err and "--model second:2=missing/file.pkl: no file" in err
    assert "--tag novalue: must be KEY=VALUE" in err and "--tag =empty-key: must be KEY=VALUE" in err


def test_an_inline_conda_spec_the_build_cannot_read_is_named_by_its_key_not_a_temporary_file(tmp_path, capsys):
    folder = project(tmp_path, {"computeType": "aks"}, LEGACY_IC)
    inline = {"entryScript": "score.py", "environment": {"python": {"condaDependencies": {
        "dependencies": ["python=3.8", {"conda": ["numpy"]}]}}}}
    (folder / "inferenceconfig.json").write_text(json.dumps(inline))
    assert run(tmp_path, folder) == 1
    assert capsys.readouterr().err.splitlines()[1].strip() == (
        f"{folder / 'inferenceconfig.json'}: environment.python.condaDependencies: cannot read the dependency "
        "{'conda': ['numpy']} (only `pip:` is a section)")


def test_a_certificate_file_that_holds_its_private_key_too_is_refused_and_nothing_is_written(tmp_path, capsys):
    # A PEM bundle (certificate and key in one file) given as ssl_cert_pem_file would put the key in the stack file.
    folder = project(tmp_path, {"computeType": "aks"}, LEGACY_IC)
    (tmp_path / "bundle.pem").write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
                                         "-----BEGIN PRIVATE KEY-----\nTLS-KEY-MATERIAL\n-----END PRIVATE KEY-----\n")
    compute = _compute(tmp_path, {"agent_count": 3, "ssl_cname": "a.b.com", "ssl_cert_pem_file": "bundle.pem",
                                  "ssl_key_pem_file": "bundle.pem"})
    assert run(tmp_path, folder, "--compute", str(compute)) == 1
    out, err = capsys.readouterr()
    assert "router.tls.cert: holds a private key" in err and "ssl_cert_pem_file" in err
    assert "TLS-KEY-MATERIAL" not in out + err and not (tmp_path / "Pulumi.imported.yaml").exists()

"""ModelService: one model deployment on the cluster, run by the Azure ML inference server.

A Deployment with no `spec.replicas` (the router owns the count and enforces the minimum; a declared
count would fight it under server-side apply), a ClusterIP Service on 5001, and, with key auth, the
service's keys. At pod start an init container fetches the model files and the scoring code from the
workspace storage (content-hash prefixes, workload identity) into the app volume, so the environment
image never changes for a new model version and a replica added months later gets the same files.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Optional

import pulumi

from components import app_insights
from components.cluster import POOL_LABEL
from components.config import AuthSettings, DeploymentSpec
from components.model_refs import MODELS_FOLDER, ModelRef, model_dir
from components.image import APP_ROOT, APP_UID, PORT
from components.keys import ServiceKeys
from components.kube_object import kube_object
from components.model_store import SERVICE_ACCOUNT, ModelStore
from components.workload import (container_security, described_annotations, labels, pod_security, resources,
                                 selector, tmp_volume)
from policies.rules import capacity

HEALTH_PORT = 5000  # the inference server's separate health listener: a probe never queues behind /score
MODELS_DIR = f"{APP_ROOT}/{MODELS_FOLDER}"
CODE_DIR = f"{APP_ROOT}/code"
PRE_STOP_SECONDS = 5  # endpoints are removed from the router while the pod still serves
AGENT_POOL_LABEL = "kubernetes.azure.com/agentpool"  # set by AKS on every node: an attached cluster's pools
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
MODEL_COUNT_ANNOTATION = "aks-serving/model-count"  # read by the policy pack (<= 1,000 models per service)


@dataclass(frozen=True)
class ModelDataTarget:
    """Where v1's ModelDataCollector writes on the cluster (azureml.monitoring in v1runtime/ reads these)."""

    container_url: pulumi.Input[str]  # https://<account>.blob.core.windows.net/modeldata
    subscription_id: pulumi.Input[str]
    resource_group: pulumi.Input[str]
    workspace: str
    writer: pulumi.Resource  # the models identity's write access: no collecting pod starts before it

    def env(self, service: str, collect: bool) -> dict:
        return {"SERVICE_NAME": service, "AKS_SERVING_MODELDATA": self.container_url if collect else "off",
                "AKS_SERVING_SUBSCRIPTION_ID": self.subscription_id, "AKS_SERVING_RESOURCE_GROUP": self.resource_group,
                "AKS_SERVING_WORKSPACE_NAME": self.workspace}


@dataclass(frozen=True)
class Placement:
    """Where a model's pods may run: the pool the config names, or for GPU models the GPU pool.

    `label` is the node label that names the pool: on a cluster this stack creates, the pool's own `aks-serving/pool`
    label, which stays when a change of VM size or zones moves the pool to a new AKS pool under a new AKS name; on
    an attached cluster (whose pools the config names by their AKS names), AKS's agentpool label.
    """

    pool: Optional[str]
    gpu: bool
    label: str = POOL_LABEL

    @classmethod
    def of(cls, spec: DeploymentSpec, pools: list[capacity.PoolCapacity], attached: bool = False) -> "Placement":
        """The config's checks (check_placement) have passed: a named pool exists and holds the GPUs."""
        label = AGENT_POOL_LABEL if attached else POOL_LABEL
        if spec.node_pool or not spec.gpu_cores:
            return cls(spec.node_pool, bool(spec.gpu_cores), label)
        return cls(max((p for p in pools if p.gpus_per_node), key=lambda p: p.gpus_per_node).name, True, label)


@dataclass(frozen=True)
class Images:
    model: pulumi.Input[str]  # the environment image, by digest
    fetcher: pulumi.Input[str]  # the model fetcher, by digest


class ModelService(pulumi.ComponentResource):
    """A model deployment named `name` in `namespace`; keys only when `auth` says key auth."""

    service_name: str
    primary_key: Optional[pulumi.Output[str]]  # secret
    secondary_key: Optional[pulumi.Output[str]]  # secret

    def __init__(self, name: str, spec: DeploymentSpec, *, namespace: pulumi.Input[str], images: Images,
                 store: ModelStore, blob_endpoint: pulumi.Input[str], container_name: pulumi.Input[str],
                 placement: Placement, router_namespace: pulumi.Input[str], auth: Optional[AuthSettings] = None,
                 model_data: Optional[ModelDataTarget] = None, annotations: Optional[dict[str, str]] = None,
                 opts: Optional[pulumi.ResourceOptions] = None):
        """`annotations`: what the Deployment and Service carry besides the spec's own description, tags and
        properties (an endpoint's, for its versions)."""
        super().__init__("aks-serving:index:ModelService", name, None, opts)
        self.service_name = name
        code = store.upload("code", [("", _source_dir(spec))])
        models = store.upload("models", [(upload_name(m, store.root), Path(m.path)) for m in spec.models]) \
            if spec.models else None
        fetch = _fetch_container(images.fetcher, blob_endpoint, container_name, code.prefix,
                                 models.prefix if models else None)
        pod_labels = {**labels(name, "model"), "azure.workload.identity/use": "true"}
        described = {**described_annotations(spec), **(annotations or {})}
        # The same objects as the typed classes, at a third of the cost: components/kube_object.py says why.
        kube_object(
            f"{name}-deployment", "apps/v1", "Deployment", {
                "metadata": {"name": name, "namespace": namespace, "labels": labels(name, "model"),
                             "annotations": {MODEL_COUNT_ANNOTATION: str(len(spec.models)), **described}},
                "spec": {
                    # No "replicas": the router scales this Deployment through its scale subresource.
                    "selector": {"matchLabels": selector(name, "model")},
                    "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
                    "template": {
                        "metadata": {"labels": pod_labels},
                        "spec": _pod_spec(name, spec, images.model, fetch, placement,
                                          model_data.env(name, spec.collect_model_data) if model_data else {}),
                    },
                }},
            # A pod must not start before its files are in storage: each upload's manifest comes after its files.
            parent=self, depends_on=[u.manifest for u in (code, models) if u] + store.access
            + ([model_data.writer] if model_data and spec.collect_model_data else []))
        kube_object(
            f"{name}-service", "v1", "Service", {
                "metadata": {"name": name, "namespace": namespace, "labels": labels(name, "model"),
                             **({"annotations": described} if described else {})},
                "spec": {"type": "ClusterIP", "selector": selector(name, "model"),
                         "ports": [{"name": "http", "port": PORT, "targetPort": "http", "protocol": "TCP"}]}},
            parent=self)
        min_replicas = spec.num_replicas if not spec.autoscale_enabled else spec.autoscale.min_replicas
        if min_replicas > 1:
            kube_object(
                f"{name}-pdb", "policy/v1", "PodDisruptionBudget", {
                    "metadata": {"name": name, "namespace": namespace, "labels": labels(name, "model")},
                    "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector(name, "model")}}},
                parent=self)
        self.primary_key = self.secondary_key = None
        if auth is not None and auth.auth_mode == "key":
            keys = ServiceKeys(f"{name}-keys", name, auth.keys, router_namespace,
                               opts=pulumi.ResourceOptions(parent=self))
            self.primary_key, self.secondary_key = keys.primary_key, keys.secondary_key
        self.register_outputs({"serviceName": name})


def _source_dir(spec: DeploymentSpec) -> Path:
    return Path(spec.source_directory) if spec.source_directory else Path(spec.entry_script).parent


def entry_script_in_app(spec: DeploymentSpec) -> str:
    """AZUREML_ENTRY_SCRIPT: the entry script's path inside the fetched code folder."""
    relative = Path(spec.entry_script).relative_to(_source_dir(spec))
    return str(PurePosixPath(CODE_DIR) / relative.as_posix())


def model_dir_in_app(spec: DeploymentSpec) -> Optional[str]:
    """AZUREML_MODEL_DIR: v1's `azureml-models/<name>/<version>` for one model, `azureml-models` for several."""
    relative = model_dir(spec.models)
    return None if relative is None else str(PurePosixPath(APP_ROOT) / relative)


def upload_name(model: ModelRef, root: Path) -> str:
    """Where a model's files go inside the models prefix (fetched to azureml-models/): a registered folder
    is kept as a folder inside its version folder, a file sits in it directly."""
    placed = model.placed() if (root / model.path).is_dir() else model.folder()
    return str(placed.relative_to(MODELS_FOLDER))


def _fetch_container(image, blob_endpoint, container_name, code_prefix: str, models_prefix: Optional[str]) -> dict:
    copies = [f"{code_prefix}={CODE_DIR}"] + ([f"{models_prefix}={MODELS_DIR}"] if models_prefix else [])
    # Outputs as list items, not one apply per service: the endpoint and container are shared by all.
    args = ["--account-url", blob_endpoint, "--container", container_name, *[x for c in copies for x in ("--copy", c)]]
    return {
        "name": "fetch-model", "image": image, "args": args,
        "securityContext": container_security(),
        "resources": resources(0.1, 0.25, cpu_limit=1, memory_gb_limit=0.5),
        "volumeMounts": [{"name": "app", "mountPath": APP_ROOT}, {"name": "tmp", "mountPath": "/tmp"}],
    }


def _pod_spec(name: str, spec: DeploymentSpec, image, fetch: dict, placement: Placement, extra_env: dict) -> dict:
    timeout_seconds = math.ceil(spec.scoring_timeout_ms / 1000)
    probe = spec.liveness_probe
    env = {
        "AZUREML_ENTRY_SCRIPT": entry_script_in_app(spec),
        # v1's app root: azureml-core's Model.get_model_path looks in $AML_APP_ROOT/azureml-models.
        "AML_APP_ROOT": APP_ROOT,
        "AZUREML_SOURCE_DIRECTORY": CODE_DIR,  # on sys.path, as v1 put the deployment's source directory
        "SCORING_TIMEOUT_MS": str(spec.scoring_timeout_ms),
        # gunicorn kills a worker silent this long; it must outlast the scoring timeout or a slow request
        # would take its worker down instead of getting the server's own timeout answer.
        "WORKER_TIMEOUT": str(timeout_seconds + 30),
        "WORKER_COUNT": str(spec.replica_max_concurrent_requests),
        "SEPERATE_HEALTH_ENDPOINT": "true",  # (sic) the inference server's spelling
        "HEALTH_PORT": str(HEALTH_PORT),
        "SERVER_VERSION_LOG_RESPONSE_ENABLED": "true",
    }
    if (models := model_dir_in_app(spec)) is not None:
        env["AZUREML_MODEL_DIR"] = models
    env.update(extra_env)
    health = {"httpGet": {"path": "/", "port": "health"}}
    container = {
        "name": "model", "image": image,
        "workingDir": CODE_DIR,  # relative paths in the script mean what they meant in its source folder
        "ports": [{"name": "http", "containerPort": PORT, "protocol": "TCP"},
                  {"name": "health", "containerPort": HEALTH_PORT, "protocol": "TCP"}],
        "env": [{"name": k, "value": v} for k, v in env.items()]
               + (app_insights.model_env() if spec.enable_app_insights else []),  # values from a Secret
        "resources": resources(spec.cpu_cores, spec.memory_gb, spec.cpu_cores_limit, spec.memory_gb_limit,
                               spec.gpu_cores),
        "securityContext": container_security(),
        "volumeMounts": [{"name": "app", "mountPath": APP_ROOT, "readOnly": True},
                         {"name": "tmp", "mountPath": "/tmp"}],
        "livenessProbe": {**health, "periodSeconds": probe.period_seconds,
                          "initialDelaySeconds": probe.initial_delay_seconds, "timeoutSeconds": probe.timeout_seconds,
                          "successThreshold": probe.success_threshold, "failureThreshold": probe.failure_threshold},
        # Readiness gates traffic, so it runs often and from the start: a replica the router adds should
        # take requests as soon as init() has finished, not after the liveness probe's long initial delay.
        "readinessProbe": {**health, "periodSeconds": 1, "timeoutSeconds": probe.timeout_seconds,
                           "successThreshold": 1, "failureThreshold": 3},
        "lifecycle": {"preStop": {"sleep": {"seconds": PRE_STOP_SECONDS}}},
    }
    pod = {
        "serviceAccountName": SERVICE_ACCOUNT,
        "automountServiceAccountToken": False,  # the workload identity token is projected on its own
        "securityContext": pod_security(APP_UID),
        # In-flight requests may run to the scoring timeout after preStop; only then may the kubelet kill.
        "terminationGracePeriodSeconds": PRE_STOP_SECONDS + timeout_seconds + 10,
        "initContainers": [fetch],
        "containers": [container],
        "volumes": [{"name": "app", "emptyDir": {}}, tmp_volume()],
        "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                                       "whenUnsatisfiable": "ScheduleAnyway",
                                       "labelSelector": {"matchLabels": selector(name, "model")}}],
    }
    if placement.pool:
        pod["nodeSelector"] = {placement.label: placement.pool}
    if placement.gpu:
        pod["tolerations"] = [GPU_TOLERATION]
    return pod

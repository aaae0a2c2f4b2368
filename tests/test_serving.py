"""The serving half of the stack under Pulumi's mocks: model services, endpoints, the router, plumbing.

Azure and the Kubernetes API server cannot run here; `AzureStandIn` answers for Azure, and the objects
checked are the Kubernetes objects exactly as the program registers them.
"""
import json
from pathlib import Path

import pulumi
import pytest

from components.keys import KEYS_FOR_LABEL
from fetcher.content import folder_hash
from pulumi_mocks import PUBLIC_IMAGES, ROOT, AzureStandIn, run_program, stack_file_config
from router.settings import RouterConfig
from tests.router.kube_standin import ROUTER_API_CALLS

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
SECRET_SIG, SECRET_VALUE = "4dabf18193072939515e22adb298388d", "1b47061264138c4ac30d75fd1eb44270"  # a secret's wire form
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
ROLE = "kubernetes:rbac.authorization.k8s.io/v1:Role"


@pytest.fixture(scope="module")
def dev():
    return run_program(stack_file_config("dev"), stack="dev")


@pytest.fixture(scope="module")
def prod():
    return run_program(prod_with_models(), stack="prod")


def prod_with_models(**extra_services):
    """The prod cluster with two models of the tests' own, a CPU and a GPU one, and no endpoint."""
    config = stack_file_config("prod")
    dev = stack_file_config("dev")
    config["environments"] = dev["environments"]
    config["endpoints"] = {}
    config["services"] = {
        "diabetes": {**dev["services"]["diabetes"], "autoscale": {"minReplicas": 2, "maxReplicas": 6}},
        "vision": {"environment": "numpy", "entryScript": "models/sentiment/score.py",
                   "models": ["models/sentiment/model-v1"], "gpuCores": 1, "cpuCores": 2, "memoryGb": 8},
        **extra_services,
    }
    return config


def k8s_objects(run, kind=None):
    return [r for r in run.resources if r.type.startswith("kubernetes:") and (kind is None or r.inputs.get("kind") == kind)]


def deployment(run, name):
    return next(r.inputs for r in run.of_type(DEPLOYMENT) if r.inputs["metadata"]["name"] == name)


def router_config(run) -> dict:
    config_map = next(r.inputs for r in run.of_type("kubernetes:core/v1:ConfigMap")
                      if r.inputs["metadata"]["name"] == "router-config")
    return json.loads(config_map["data"]["config.json"])


def env_of(container) -> dict:
    return {e["name"]: e.get("value") for e in container["env"]}


# ---------------------------------------------------------------- the graph


def test_every_service_and_endpoint_version_is_a_model_service_in_the_models_namespace(dev):
    assert sorted(r.name for r in dev.of_type("aks-serving:index:ModelService")) == [
        "diabetes", "sentiment", "sentiment-ab-v1", "sentiment-ab-v2"]
    models = [r.inputs for r in dev.of_type(DEPLOYMENT)
              if r.inputs["metadata"]["labels"]["app.kubernetes.io/component"] == "model"]
    assert sorted(d["metadata"]["name"] for d in models) == ["diabetes", "sentiment", "sentiment-ab-v1", "sentiment-ab-v2"]
    assert {d["metadata"]["namespace"] for d in models} == {"aks-serving-models"}
    for d in models:
        assert d["metadata"]["labels"]["app.kubernetes.io/part-of"] == "aks-serving"
        assert d["metadata"]["labels"]["app.kubernetes.io/name"] == d["metadata"]["name"]


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_kubernetes_token_names_its_objects_group_version_and_kind(stack, dev, prod):
    # As the provider reads a token back (gvkFromURN): `<group>/<version>:<Kind>`, `core` for the core group.
    # `kubernetes:v1:Service` passes the mocks and fails `pulumi up`.
    run = {"dev": dev, "prod": prod}[stack]
    for r in k8s_objects(run):
        if r.type.startswith("kubernetes:helm.sh/") or r.type.endswith("Patch"):
            continue
        group_version, kind = r.type.removeprefix("kubernetes:").split(":")
        assert kind == r.inputs["kind"], r.name
        assert group_version == (r.inputs["apiVersion"] if "/" in r.inputs["apiVersion"]
                                 else f"core/{r.inputs['apiVersion']}"), r.name


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_no_deployment_declares_a_replica_count_and_no_hpa_targets_a_model(stack, dev, prod):
    run = {"dev": dev, "prod": prod}[stack]
    assert all("replicas" not in r.inputs["spec"] for r in run.of_type(DEPLOYMENT))
    model_names = {r.inputs["metadata"]["name"] for r in run.of_type(DEPLOYMENT)
                   if r.inputs["metadata"]["labels"]["app.kubernetes.io/component"] == "model"}
    assert all(h.inputs["spec"]["scaleTargetRef"]["name"] not in model_names for h in run.of_type(HPA))


def test_the_router_hpa_exists_only_on_production(dev, prod):
    assert dev.of_type(HPA) == []
    (hpa,) = [h.inputs for h in prod.of_type(HPA)]
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "router"}
    assert hpa["spec"]["minReplicas"] == 2 and hpa["spec"]["maxReplicas"] == 6  # Pulumi.prod.yaml's router


# ---------------------------------------------------------------- model pods


def test_model_objects_wait_for_their_namespace_and_files_and_keys_for_the_routers_namespace(dev):
    # On a first `pulumi up` nothing may be created in a namespace that does not exist yet, and no pod may
    # start before its files are in storage (a component's own dependencies do not pass to its children).
    deployment_deps = dev.named("diabetes-deployment").depends_on
    assert "models-aks-serving-models-namespace" in dev.named("diabetes-service").depends_on
    assert "models-aks-serving-models-namespace" in deployment_deps
    # One edge per upload: its manifest, which waits for every file of it and lists them.
    manifests = sorted(d for d in deployment_deps if d.startswith("models-") and d.endswith(".json"))
    assert [m.split("/")[0] for m in manifests] == ["models-code", "models-models"]
    for manifest in manifests:
        files = [r.name for r in dev.of_type("azure-native:storage:Blob") if r.name.startswith(manifest[:-5] + "/")]
        assert files and set(files) <= set(dev.named(manifest).depends_on)
        listing = json.loads(dev.named(manifest).inputs["source"].text)
        assert [f"{manifest[:-5]}/{rel}" for rel in listing["files"]] == sorted(files)
    assert any(d.endswith("/score.py") for d in dev.named(manifests[0]).depends_on)
    assert "router-namespace" in dev.named("diabetes-keys-secret").depends_on


def test_model_pods_wait_for_their_identity_and_federated_credentials_are_written_one_at_a_time():
    # Azure answers 409 to concurrent credential writes on one identity; a pod started before its credential
    # and read role exist fails its token exchange.
    run = run_program(prod_with_models(other={"environment": "numpy", "entryScript": "models/sentiment/score.py",
                                              "namespace": "team-b"}), stack="prod")
    federations = [r for r in run.of_type("azure-native:managedidentity:FederatedIdentityCredential")]
    assert [f.inputs["subject"].split(":")[2] for f in federations] == ["aks-serving-models", "team-b"]
    assert federations[0].name in federations[1].depends_on
    for deployment_name in ("diabetes-deployment", "other-deployment"):
        deps = run.named(deployment_name).depends_on
        assert {"models-reader", *(f.name for f in federations)} <= set(deps)


def test_a_model_pod_fetches_its_files_by_content_hash_and_serves_with_the_configs_timeouts(dev):
    pod = deployment(dev, "diabetes")["spec"]["template"]
    spec = pod["spec"]
    (fetch,) = spec["initContainers"]
    args = fetch["args"]
    copies = [args[i + 1] for i, a in enumerate(args) if a == "--copy"]
    assert copies == [f"code/{folder_hash(ROOT / 'models/diabetes')}=/var/azureml-app/code",
                      f"models/{_models_hash(('diabetes/1/model.joblib', 'models/diabetes/model/model.joblib'))}"
                      f"=/var/azureml-app/azureml-models"]
    assert args[args.index("--account-url") + 1] == "https://mlwdevmdlq7x2k9.blob.core.windows.net/"
    (model,) = spec["containers"]
    env = env_of(model)
    assert env["AZUREML_ENTRY_SCRIPT"] == "/var/azureml-app/code/score.py"
    # v1's layout: azureml-core's Model.get_model_path looks in $AML_APP_ROOT/azureml-models/<name>/<version>.
    assert env["AML_APP_ROOT"] == "/var/azureml-app" and env["AZUREML_SOURCE_DIRECTORY"] == "/var/azureml-app/code"
    assert env["AZUREML_MODEL_DIR"] == "/var/azureml-app/azureml-models/diabetes/1"
    assert model["workingDir"] == "/var/azureml-app/code"
    assert env["SCORING_TIMEOUT_MS"] == "60000" and int(env["WORKER_TIMEOUT"]) > 60
    # Probes hit the server's separate health listener, never the scoring port.
    assert model["livenessProbe"]["httpGet"]["port"] == "health" == model["readinessProbe"]["httpGet"]["port"]
    assert model["livenessProbe"]["initialDelaySeconds"] == 310 and model["livenessProbe"]["periodSeconds"] == 10
    assert {p["name"]: p["containerPort"] for p in model["ports"]} == {"http": 5001, "health": 5000}
    assert spec["terminationGracePeriodSeconds"] > model["lifecycle"]["preStop"]["sleep"]["seconds"] + 60
    # Workload identity, not a secret: the pod runs as the federated ServiceAccount.
    assert spec["serviceAccountName"] == "model" and pod["metadata"]["labels"]["azure.workload.identity/use"] == "true"
    text = json.dumps(pod)
    assert "AccountKey" not in text and "sig=" not in text and "secretKeyRef" not in text


def _models_hash(*placed):
    """The content hash of model files, given as (where the file sits under azureml-models, its source)."""
    from fetcher.content import content_hash
    return content_hash((name, (ROOT / source).read_bytes()) for name, source in placed)


def test_several_models_and_a_registered_folder_keep_v1s_layout():
    """`-m sent:3` (a folder, kept as a folder), `-m diabetes:1` (a file) and a bare path (name = its last
    part, version 1): each under azureml-models/<name>/<version>/, and AZUREML_MODEL_DIR the folder of all."""
    run = run_program(prod_with_models(multi={
        "environment": "numpy", "entryScript": "models/sentiment/score.py",
        "models": [{"path": "models/sentiment/model-v1", "name": "sent", "version": 3},
                   {"path": "models/diabetes/model/model.joblib", "name": "diabetes"},
                   "models/sentiment/model-v2/weights.json"]}), stack="prod")
    spec = deployment(run, "multi")["spec"]["template"]["spec"]
    assert env_of(spec["containers"][0])["AZUREML_MODEL_DIR"] == "/var/azureml-app/azureml-models"
    args = spec["initContainers"][0]["args"]
    prefix = next(c for c in (args[i + 1] for i, a in enumerate(args) if a == "--copy") if c.startswith("models/"))
    prefix = prefix.split("=")[0]
    files = sorted(r.inputs["blobName"].removeprefix(prefix + "/") for r in run.of_type("azure-native:storage:Blob")
                   if r.inputs["blobName"].startswith(prefix + "/"))
    assert files == ["diabetes/1/model.joblib", "sent/3/model-v1/weights.json", "weights.json/1/weights.json"]


def test_a_model_name_and_version_listed_twice_or_a_bad_name_is_refused():
    twice = prod_with_models(multi={"environment": "numpy", "entryScript": "models/sentiment/score.py",
                                    "models": [{"path": "models/sentiment/model-v1", "name": "s"},
                                               {"path": "models/sentiment/model-v2", "name": "s"}]})
    with pytest.raises(pulumi.RunError, match=r"services\.multi\.models: s:1 listed twice"):
        run_program(twice, stack="prod")
    bad = prod_with_models(multi={"environment": "numpy", "entryScript": "models/sentiment/score.py",
                                  "models": [{"path": "models/sentiment/model-v1", "name": "-s"}]})
    with pytest.raises(pulumi.RunError, match=r"services\.multi\.models\[0\]\.name: '-s' is not a v1 model name"):
        run_program(bad, stack="prod")


def test_a_missing_file_stops_the_program_before_any_resource_naming_its_key():
    config = prod_with_models(late={"environment": "numpy", "entryScript": "models/sentiment/scoring.py"})
    with pytest.raises(pulumi.RunError, match=r"services\.late\.entryScript: no file models/sentiment/scoring\.py"):
        run_program(config, stack="prod")


def test_model_data_collection_writes_to_the_modeldata_container_with_the_models_identity(dev):
    run = run_program(prod_with_models(collecting={
        "environment": "numpy", "entryScript": "models/sentiment/score.py", "collectModelData": True}), stack="prod")
    writer = run.named("models-modeldata-writer")
    assert writer.inputs["roleDefinitionId"].endswith("/roleDefinitions/ba92f5b4-2d11-453d-a403-e96b0029c9fe")
    assert writer.inputs["scope"].endswith("/blobServices/default/containers/modeldata")
    collecting = deployment(run, "collecting")
    env = env_of(collecting["spec"]["template"]["spec"]["containers"][0])
    assert env["AKS_SERVING_MODELDATA"].startswith("https://") and env["AKS_SERVING_MODELDATA"].endswith(
        ".blob.core.windows.net/modeldata")
    assert env["SERVICE_NAME"] == "collecting" and env["AKS_SERVING_WORKSPACE_NAME"] == "mlw-prod"
    assert env["AKS_SERVING_SUBSCRIPTION_ID"] and env["AKS_SERVING_RESOURCE_GROUP"]
    # No collecting pod starts before its identity may write there; the others keep collect() a no-op.
    assert "models-modeldata-writer" in run.named("collecting-deployment").depends_on
    other = env_of(deployment(run, "diabetes")["spec"]["template"]["spec"]["containers"][0])
    assert other["AKS_SERVING_MODELDATA"] == "off"
    # A stack where nobody collects grants no write access at all.
    assert [r for r in dev.resources if r.name == "models-modeldata-writer"] == []


def test_model_pods_meet_restricted_pod_security_with_a_read_only_root(dev):
    for name in ("diabetes", "sentiment"):
        spec = deployment(dev, name)["spec"]["template"]["spec"]
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] >= 10000
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
        for container in spec["containers"] + spec["initContainers"]:
            sc = container["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"] == {"drop": ["ALL"]} and not sc.get("privileged")
            # The user and the seccomp profile come from the pod; no container overrides them.
            assert all(sc.get(k, pod[k]) == pod[k] for k in ("runAsUser", "runAsNonRoot", "seccompProfile"))
            assert set(container["resources"]["requests"]) >= {"cpu", "memory"}
            assert set(container["resources"]["limits"]) >= {"cpu", "memory"}


def test_requests_and_limits_follow_the_config_and_gpu_models_land_on_the_gpu_pool(prod):
    diabetes = deployment(prod, "diabetes")["spec"]["template"]["spec"]
    assert diabetes["containers"][0]["resources"] == {"requests": {"cpu": "100m", "memory": "512Mi"},
                                                      "limits": {"cpu": "100m", "memory": "512Mi"}}
    assert "tolerations" not in diabetes and "nodeSelector" not in diabetes
    vision = deployment(prod, "vision")["spec"]["template"]["spec"]
    assert vision["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert vision["nodeSelector"] == {"aks-serving/pool": "gpu"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in vision["tolerations"]


def test_a_pdb_only_where_min_replicas_is_above_one(prod):
    pdbs = {r.inputs["metadata"]["name"] for r in prod.of_type("kubernetes:policy/v1:PodDisruptionBudget")
            if r.inputs["metadata"]["namespace"] == "aks-serving-models"}
    assert pdbs == {"diabetes"}  # minReplicas 2; vision runs with the default minimum of 1


def test_the_production_stack_file_serves_several_models_an_endpoint_and_one_on_the_gpu_pool():
    run = run_program(stack_file_config("prod"), stack="prod")
    models = {r.inputs["metadata"]["name"]: r.inputs for r in run.of_type(DEPLOYMENT)
              if r.inputs["metadata"]["namespace"] == "aks-serving-models"}
    assert set(models) == {"diabetes", "sentiment", "mnist-gpu", "sentiment-ab-v1", "sentiment-ab-v2"}
    gpu = models["mnist-gpu"]["spec"]["template"]["spec"]
    assert gpu["nodeSelector"] == {"aks-serving/pool": "gpu"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in gpu["tolerations"]
    [model] = gpu["containers"]
    assert model["resources"]["limits"]["nvidia.com/gpu"] == "1"
    for name in ("diabetes", "sentiment", "sentiment-ab-v1", "sentiment-ab-v2"):
        pod = models[name]["spec"]["template"]["spec"]
        assert pod["nodeSelector"] == {"aks-serving/pool": "cpu"} and "tolerations" not in pod
    assert run.exports["endpoints"]["sentiment-ab"]["traffic"] == {"v1": 90, "v2": 10}


def test_the_device_plugin_runs_on_gpu_nodes_by_digest_only_when_a_gpu_pool_exists(dev, prod):
    assert dev.of_type("kubernetes:apps/v1:DaemonSet") == []
    (plugin,) = [r.inputs for r in prod.of_type("kubernetes:apps/v1:DaemonSet")]
    pod = plugin["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == "nvcr.io/nvidia/k8s-device-plugin@sha256:" + "7d" * 32
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    assert pod["nodeSelector"] == {"aks-serving/accelerator": "nvidia-gpu"}


# ---------------------------------------------------------------- images


def test_services_sharing_an_environment_share_one_image_and_every_image_is_by_digest(dev):
    # sentiment and both endpoint versions use the numpy environment; diabetes uses sklearn.
    assert len(dev.of_type("aks-serving:index:EnvironmentImage")) == 2
    images = {c["image"] for d in dev.of_type(DEPLOYMENT)
              for c in d.inputs["spec"]["template"]["spec"]["containers"] + d.inputs["spec"]["template"]["spec"].get("initContainers", [])}
    assert all("@sha256:" in image for image in images)
    numpy = {deployment(dev, n)["spec"]["template"]["spec"]["containers"][0]["image"]
             for n in ("sentiment", "sentiment-ab-v1", "sentiment-ab-v2")}
    assert len(numpy) == 1


def test_an_unchanged_config_gives_the_same_image_tags_on_a_second_run(dev):
    again = run_program(stack_file_config("dev"), stack="dev")
    tags = lambda run: sorted(f"{r.inputs['server']}/{r.inputs['repository']}:{r.inputs['tag']}"  # noqa: E731
                              for r in run.of_type("pulumi-python:dynamic/aks-serving:RegistryImage"))
    assert tags(again) == tags(dev) and len(tags(dev)) == 4  # two environments, the router, the fetcher


def test_a_preview_registers_the_serving_graph_with_unknown_digests():
    run = run_program(stack_file_config("dev"), stack="dev", preview=True)
    assert len([r for r in run.of_type(DEPLOYMENT)]) == 5
    assert run.exports["services"]["diabetes"]["auth"] == "key"


# ---------------------------------------------------------------- keys and outputs


def test_keys_live_in_labelled_secrets_in_the_routers_namespace(dev):
    secrets = {r.inputs["metadata"]["name"]: r.inputs for r in dev.of_type("kubernetes:core/v1:Secret")}
    assert set(secrets) == {"diabetes-keys", "sentiment-ab-keys"}  # sentiment uses tokens
    for name, secret in secrets.items():
        assert secret["metadata"]["namespace"] == "aks-serving"
        assert secret["metadata"]["labels"][KEYS_FOR_LABEL] == name.removesuffix("-keys")
        data = secret["stringData"]
        assert data[SECRET_SIG] == SECRET_VALUE  # the provider holds it as a secret
        assert set(data["value"]) == {"primaryKey", "secondaryKey"}
    # What the provider reads back (`data` is base64 of `stringData`) is stored as a secret too.
    assert all(r.secret_outputs == ["data", "stringData"] for r in dev.of_type("kubernetes:core/v1:Secret"))


def test_bumping_the_primary_key_version_regenerates_only_the_primary(dev):
    config = stack_file_config("dev")
    config["services"]["diabetes"]["keys"] = {"primaryVersion": 2}
    bumped = run_program(config, stack="dev")
    before, after = dev.exports["keys"]["diabetes"], bumped.exports["keys"]["diabetes"]
    assert after["primaryKey"] != before["primaryKey"]
    assert after["secondaryKey"] == before["secondaryKey"]
    assert bumped.exports["keys"]["sentiment-ab"] == dev.exports["keys"]["sentiment-ab"]


def test_outputs_give_scoring_uris_and_no_secret_in_a_plain_output(dev):
    assert dev.exports["routerAddress"] == "20.31.42.53"
    diabetes = dev.exports["services"]["diabetes"]
    assert (diabetes["scoringUri"], diabetes["swaggerUri"], diabetes["auth"]) == (
        "http://20.31.42.53/api/v1/service/diabetes/score", "http://20.31.42.53/api/v1/service/diabetes/swagger.json",
        "key")
    assert dev.exports["endpoints"]["sentiment-ab"]["scoringUri"] == "http://20.31.42.53/api/v1/endpoint/sentiment-ab/score"
    assert dev.exports["endpoints"]["sentiment-ab"]["traffic"] == {"v1": 80, "v2": 20}
    assert {"keys", "kubeconfig", "tokenSigningKey"} <= dev.secret_exports
    secrets = [k for owner in dev.exports["keys"].values() for k in owner.values()]
    secrets += [dev.exports["kubeconfig"], dev.exports["tokenSigningKey"]]
    plain = json.dumps({k: v for k, v in dev.exports.items() if k not in dev.secret_exports})
    assert all(s and s not in plain for s in secrets)



def described_config() -> dict:
    config = stack_file_config("dev")
    config["services"]["diabetes"].update(
        description="diabetes progression, ridge regression", tags={"area": "health", "model version": 2},
        properties={"trainedOn": "2026-11-30"}, collectModelData=True)
    endpoint = config["endpoints"]["sentiment-ab"]
    endpoint.update(description="testing versions", tags={"sckitlearn": "demo"})
    endpoint["versions"]["v2"].update(description="my second version", tags={"modelVersion": "b"})
    return config


@pytest.fixture(scope="module")
def described():
    return run_program(described_config(), stack="dev")


def test_description_tags_and_properties_reach_the_kubernetes_objects(described):
    diabetes = deployment(described, "diabetes")["metadata"]["annotations"]
    assert diabetes["aks-serving/description"] == "diabetes progression, ridge regression"
    assert json.loads(diabetes["aks-serving/tags"]) == {"area": "health", "model version": "2"}  # v1's text values
    assert json.loads(diabetes["aks-serving/properties"]) == {"trainedOn": "2026-11-30"}
    service = next(r.inputs for r in described.of_type("kubernetes:core/v1:Service")
                   if r.inputs["metadata"]["name"] == "diabetes")
    assert service["metadata"]["annotations"]["aks-serving/tags"] == diabetes["aks-serving/tags"]
    # An endpoint version carries its own metadata and its endpoint's, under its endpoint's name.
    v2 = deployment(described, "sentiment-ab-v2")["metadata"]["annotations"]
    assert v2["aks-serving/endpoint"] == "sentiment-ab" and v2["aks-serving/description"] == "my second version"
    assert json.loads(v2["aks-serving/tags"]) == {"modelVersion": "b"}
    assert v2["aks-serving/endpoint-description"] == "testing versions"
    assert json.loads(v2["aks-serving/endpoint-tags"]) == {"sckitlearn": "demo"}
    v1 = deployment(described, "sentiment-ab-v1")["metadata"]["annotations"]
    assert "aks-serving/tags" not in v1 and json.loads(v1["aks-serving/endpoint-tags"]) == {"sckitlearn": "demo"}


def test_outputs_hold_what_v1s_webservice_exposed(described):
    diabetes = described.exports["services"]["diabetes"]
    assert diabetes["scoringUri"] == "http://20.31.42.53/api/v1/service/diabetes/score"
    assert diabetes["swaggerUri"] == "http://20.31.42.53/api/v1/service/diabetes/swagger.json"
    assert (diabetes["computeType"], diabetes["authEnabled"], diabetes["tokenAuthEnabled"]) == ("AKS", True, False)
    assert diabetes["appInsightsEnabled"] is False and diabetes["dataCollection"] == {"storageEnabled": True}
    assert diabetes["kubernetes"] == {"namespace": "aks-serving-models", "deployment": "diabetes"}
    assert diabetes["stateCommand"] == "python -m aks_serving status --stack dev"
    assert diabetes["autoScaler"] == {"autoscaleEnabled": True, "minReplicas": 1, "maxReplicas": 3,
                                      "targetUtilization": 70, "refreshPeriodInSeconds": 1}
    assert diabetes["containerResourceRequirements"]["cpu"] == 0.1 and diabetes["models"] == ["diabetes:1"]
    assert (diabetes["description"], diabetes["tags"]["model version"]) == ("diabetes progression, ridge regression", "2")
    sentiment = described.exports["services"]["sentiment"]
    assert (sentiment["auth"], sentiment["authEnabled"], sentiment["tokenAuthEnabled"]) == ("token", False, True)
    assert sentiment["token"] == {"issuer": "aks-serving", "audiences": ["sentiment"]}  # the stack's own key
    assert "token" not in diabetes
    endpoint = described.exports["endpoints"]["sentiment-ab"]
    assert (endpoint["computeType"], endpoint["defaultVersion"], endpoint["tags"]) == ("AKSENDPOINT", "v1", {"sckitlearn": "demo"})
    assert endpoint["swaggerUri"] == "http://20.31.42.53/api/v1/service/sentiment-ab-v1/swagger.json"
    v2 = endpoint["versions"]["v2"]
    assert (v2["trafficPercentile"], v2["isDefault"], v2["description"]) == (20, False, "my second version")
    assert v2["kubernetes"]["deployment"] == "sentiment-ab-v2"
    assert endpoint["versions"]["v1"]["isControlVersionType"] is True


def test_tags_that_are_not_text_or_too_long_are_refused_by_key():
    from components.config import ConfigError, parse_stack_config
    config = described_config()
    config["services"]["diabetes"]["tags"] = {"owner": {"team": "ml"}}
    with pytest.raises(ConfigError, match=r"services\.diabetes\.tags\.owner: Input should be a valid string"):
        parse_stack_config(config)
    config["services"]["diabetes"]["tags"] = {"owner": "x" * 1025}
    with pytest.raises(ConfigError, match=r"services\.diabetes\.tags\.owner: at most 1024 characters"):
        parse_stack_config(config)


# ---------------------------------------------------------------- the router


def test_the_router_config_is_the_typed_config_with_kubernetes_backends(dev):
    document = router_config(dev)
    config = RouterConfig.model_validate(document)
    assert config.services["diabetes"].backend.model_dump() == {
        "kind": "kubernetes", "namespace": "aks-serving-models", "service": "diabetes", "deployment": "diabetes",
        "port": 5001, "scheme": "http"}
    assert config.services["diabetes"].auth.key_secret_labels == {KEYS_FOR_LABEL: "diabetes"}
    assert config.services["sentiment"].auth.mode == "token"
    assert config.services["sentiment-ab-v1"].auth.key_secret_labels == {KEYS_FOR_LABEL: "sentiment-ab"}
    assert config.endpoints["sentiment-ab"].traffic_shares() == {"v1": 80, "v2": 20}
    assert config.router.cluster.namespace == "aks-serving" and config.router.cluster.peer_service == "router-peers"
    # Every service says how it authenticates; none falls back to a default.
    assert all("auth" in s for s in document["services"].values())


def test_the_router_reads_its_configmap_as_json_with_a_line_per_service(dev, tmp_path):
    from router.settings import load_config

    config_map = next(r.inputs for r in dev.of_type("kubernetes:core/v1:ConfigMap")
                      if r.inputs["metadata"]["name"] == "router-config")
    router = next(r.inputs for r in dev.of_type(DEPLOYMENT) if r.inputs["metadata"]["name"] == "router")
    args = router["spec"]["template"]["spec"]["containers"][0]["args"]
    path = args[args.index("--config") + 1]
    assert set(config_map["data"]) == {Path(path).name}
    # The router's own loader, on the file as mounted: it picks the parser by the suffix.
    (tmp_path / Path(path).name).write_text(config_map["data"][Path(path).name])
    assert load_config(tmp_path / Path(path).name) == RouterConfig.model_validate(router_config(dev))
    # One line per service: a change to one service is a change to one line.
    from components.router_config import config_text

    document = router_config(dev)
    changed = json.loads(json.dumps(document))
    changed["services"]["diabetes"]["autoscale"]["maxReplicas"] += 1
    before, after = config_text(document).splitlines(), config_text(changed).splitlines()
    assert len(before) == len(after) and [i for i, (a, b) in enumerate(zip(before, after)) if a != b] == [
        next(i for i, line in enumerate(before) if line.startswith('  "diabetes": '))]


def test_a_router_config_over_a_configmaps_1_mib_fails_before_anything_is_registered():
    dev = stack_file_config("dev")
    many = {**dev, "services": {f"svc-{i:04d}": dev["services"]["diabetes"] for i in range(2500)}}
    stand_in = AzureStandIn()
    with pytest.raises(pulumi.RunError) as err:
        run_program(many, stand_in=stand_in)
    assert stand_in.created == []
    assert "services: the router's config for 2502 services and endpoint versions is" in str(err.value)
    assert "over the 1 MiB a ConfigMap holds" in str(err.value)


def test_the_routers_roles_grant_exactly_the_calls_the_router_makes(prod):
    granted = set()
    for role in prod.of_type(ROLE):
        ns = role.inputs["metadata"]["namespace"]
        kind = "router-ns" if ns == "aks-serving" else "models"
        for rule in role.inputs["rules"]:
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    name, _, sub = resource.partition("/")
                    granted |= {(verb, group, name, sub, kind) for verb in rule["verbs"]}
    assert granted == ROUTER_API_CALLS
    assert prod.of_type("kubernetes:rbac.authorization.k8s.io/v1:ClusterRole") == []
    bindings = prod.of_type("kubernetes:rbac.authorization.k8s.io/v1:RoleBinding")
    assert {b.inputs["subjects"][0]["name"] for b in bindings} == {"router"}


def test_the_router_pod_is_restricted_probed_on_admin_and_found_by_its_peers(dev, prod):
    router = deployment(prod, "router")
    assert router["metadata"]["labels"]["app.kubernetes.io/component"] == "router"
    (container,) = router["spec"]["template"]["spec"]["containers"]
    assert container["readinessProbe"]["httpGet"]["port"] == "admin" == container["livenessProbe"]["httpGet"]["port"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert "@sha256:" in container["image"]
    peers = next(r.inputs for r in prod.of_type("kubernetes:core/v1:Service") if r.inputs["metadata"]["name"] == "router-peers")
    assert peers["spec"]["clusterIP"] == "None" and peers["spec"]["publishNotReadyAddresses"] is True
    assert peers["spec"]["ports"][0]["port"] == 8081


def test_an_internal_load_balancer_names_its_subnet_and_custom_tls_serves_https():
    config = stack_file_config("dev")
    config["router"] = {"loadBalancer": {"type": "internal", "subnet": "snet-serving"},
                        "tls": {"mode": "custom", "cname": "ml.contoso.com", "cert": "CERT", "key": "KEY"}}
    run = run_program(config, stack="dev", secret_sections=("router",))
    service = next(r.inputs for r in run.of_type("kubernetes:core/v1:Service") if r.inputs["metadata"]["name"] == "router")
    assert service["metadata"]["annotations"] == {
        "service.beta.kubernetes.io/azure-load-balancer-internal": "true",
        "service.beta.kubernetes.io/azure-load-balancer-internal-subnet": "snet-serving"}
    assert service["spec"]["ports"][0]["port"] == 443
    tls = next(r.inputs for r in run.of_type("kubernetes:core/v1:Secret") if r.inputs["metadata"]["name"] == "router-tls")
    assert tls["type"] == "kubernetes.io/tls"
    assert run.exports["services"]["diabetes"]["scoringUri"] == "https://ml.contoso.com/api/v1/service/diabetes/score"
    # The router terminates TLS itself, on 8443, from the mounted Secret.
    assert router_config(run)["router"]["tls"] == {"certFile": "/etc/router/tls/tls.crt",
                                                  "keyFile": "/etc/router/tls/tls.key", "port": 8443}
    assert service["spec"]["ports"] == [{"name": "https", "port": 443, "targetPort": "https", "protocol": "TCP"}]
    pod = deployment(run, "router")["spec"]["template"]["spec"]
    assert {"name": "tls", "secret": {"secretName": "router-tls"}} in pod["volumes"]


def test_auto_tls_gets_a_certificate_for_the_dns_label_through_the_router(prod):
    name = "aks-serving-prod.westeurope.cloudapp.azure.com"  # Pulumi.prod.yaml's label, in the cluster's region
    service = next(r.inputs for r in prod.of_type("kubernetes:core/v1:Service") if r.inputs["metadata"]["name"] == "router")
    assert service["metadata"]["annotations"]["service.beta.kubernetes.io/azure-dns-label-name"] == "aks-serving-prod"
    # 443 is the router's HTTPS; 80 reaches only its ACME port (challenges and redirects), never plain scoring.
    assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [(443, "https"), (80, "acme")]
    release = prod.one("kubernetes:helm.sh/v3:Release")
    assert (release.inputs["chart"], release.inputs["version"], release.inputs["namespace"]) == (
        "cert-manager", "v1.19.1", "cert-manager")
    assert release.inputs["repositoryOpts"]["repo"] == "https://charts.jetstack.io"
    assert release.inputs["values"]["crds"] == {"enabled": True, "keep": True}
    # Every image the chart runs (the solver's too) is pinned by the digest its registry gave.
    values = release.inputs["values"]
    digests = [values["image"]["digest"]] + [values[k]["image"]["digest"]
                                             for k in ("webhook", "cainjector", "acmesolver", "startupapicheck")]
    assert digests == [PUBLIC_IMAGES[f"quay.io/jetstack/cert-manager-{name}:v1.19.1"]
                       for name in ("controller", "webhook", "cainjector", "acmesolver", "startupapicheck")]
    custom = {r.inputs["kind"]: r for r in prod.of_type("kubernetes:cert-manager.io/v1:Issuer")
              + prod.of_type("kubernetes:cert-manager.io/v1:Certificate")}
    issuer, certificate = custom["Issuer"], custom["Certificate"]
    assert issuer.inputs["metadata"]["namespace"] == certificate.inputs["metadata"]["namespace"] == "aks-serving"
    acme = issuer.inputs["spec"]["acme"]
    assert acme["server"] == "https://acme-v02.api.letsencrypt.org/directory"
    assert acme["solvers"] == [{"http01": {"ingress": {"ingressClassName": "aks-serving-router", "serviceType": "ClusterIP"}}}]
    assert certificate.inputs["spec"]["dnsNames"] == [name] and certificate.inputs["spec"]["secretName"] == "router-tls"
    assert certificate.inputs["spec"]["issuerRef"] == {"name": issuer.inputs["metadata"]["name"], "kind": "Issuer",
                                                      "group": "cert-manager.io"}
    # The CRDs come with the chart, so the custom resources wait for it.
    assert release.name in issuer.depends_on and {release.name, issuer.name} <= set(certificate.depends_on)

    # The router loads this config: HTTPS from the Secret's files, and the ACME listener on 8088.
    config = RouterConfig.model_validate(router_config(prod))
    assert (config.router.tls.port, config.router.acme.port, config.router.acme.solver_port) == (8443, 8088, 8089)
    assert config.router.acme.solver_label_selector == "acme.cert-manager.io/http01-solver=true"
    pod = deployment(prod, "router")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert {"name": "acme", "containerPort": 8088, "protocol": "TCP"} in container["ports"]
    # The Secret appears only after the router answered the challenge: the pod must start without it.
    assert {"name": "tls", "secret": {"secretName": "router-tls", "optional": True}} in pod["volumes"]
    policies = {r.inputs["metadata"]["name"]: r.inputs["spec"]
                for r in prod.of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy")}
    assert policies["acme-solver"]["podSelector"] == {"matchLabels": {"acme.cert-manager.io/http01-solver": "true"}}
    assert policies["acme-solver"]["ingress"][0]["ports"] == [{"port": 8089, "protocol": "TCP"}]
    assert {"port": 8088, "protocol": "TCP"} in policies["router"]["ingress"][0]["ports"]
    assert prod.exports["services"]["diabetes"]["scoringUri"] == f"https://{name}/api/v1/service/diabetes/score"


# ---------------------------------------------------------------- network


def test_models_are_fenced_in_and_only_router_pods_reach_them(dev):
    policies = {r.inputs["metadata"]["name"]: r.inputs for r in dev.of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy")
                if r.inputs["metadata"]["namespace"] == "aks-serving-models"}
    assert policies["default-deny"]["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    (rule,) = policies["from-router"]["spec"]["ingress"]
    assert rule["ports"] == [{"port": 5001, "protocol": "TCP"}]
    assert rule["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "aks-serving"}},
                             "podSelector": {"matchLabels": {"app.kubernetes.io/component": "router"}}}]
    router = next(r.inputs for r in dev.of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy")
                  if r.inputs["metadata"]["namespace"] == "aks-serving" and r.inputs["metadata"]["name"] == "router")
    admin = [i for i in router["spec"]["ingress"] if i["ports"][0]["port"] == 8081]
    assert admin == [{"from": [{"podSelector": {"matchLabels": {"app.kubernetes.io/component": "router",
                                                                   "app.kubernetes.io/name": "router"}}}],
                      "ports": [{"port": 8081, "protocol": "TCP"}]}]

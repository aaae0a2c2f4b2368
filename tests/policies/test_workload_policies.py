"""Workload policies (Analyze): images by digest, requests and limits, Pod Security Standards "restricted"."""
import pytest

from policy_kit import DIGEST, IMAGE, changed, container, deployment, mandatory, only, pod_spec

WORKLOAD_TYPES = ["kubernetes:apps/v1:Deployment", "kubernetes:apps/v1:StatefulSet", "kubernetes:apps/v1:DaemonSet",
                  "kubernetes:batch/v1:Job", "kubernetes:batch/v1:CronJob", "kubernetes:core/v1:Pod"]


@pytest.mark.parametrize("kind_type", WORKLOAD_TYPES)
def test_every_workload_kind_is_checked(pack, kind_type):
    assert pack.analyze(deployment("worker", "worker", kind_type=kind_type)) == []
    tagged = deployment("worker", "worker", kind_type=kind_type, spec=pod_spec([container(image="python:3.11")]))
    assert [d.policy for d in mandatory(pack.analyze(tagged))] == ["images-by-digest"]


def test_images_by_digest(pack):
    assert pack.analyze(deployment(spec=pod_spec([container()], init=[container("fetch", image=IMAGE)]))) == []
    fetch = container("fetch", image="mcr.microsoft.com/azure-cli:2.67")
    by_tag = deployment(spec=pod_spec([container()], init=[fetch]))
    found = only(pack.analyze(by_tag), "images-by-digest")
    assert "Deployment aks-serving-models/diabetes (Pulumi resource diabetes-deployment): init container 'fetch' " \
           "runs mcr.microsoft.com/azure-cli:2.67, not pinned by digest" in found[0].message
    assert "Fix: reference the image as <registry>/<repository>@sha256:<digest>" in found[0].message
    tag_and_digest = f"registry.example/model:1.0@{DIGEST}"
    assert pack.analyze(deployment(spec=pod_spec([container(image=tag_and_digest)]))) == []
    short = deployment(spec=pod_spec([container(image="registry.example/model@sha256:abc")]))
    assert [d.policy for d in pack.analyze(short)] == ["images-by-digest"]


def test_images_by_tag_from_an_exempt_prefix(start_pack):
    configured = start_pack({"images-by-digest": {"exemptImages": ["mcr.microsoft.com/oss/nvidia/"]}})
    plugin = deployment("nvidia-device-plugin", "gpu", namespace="kube-system", spec=pod_spec(
        [container(image="mcr.microsoft.com/oss/nvidia/k8s-device-plugin:v0.17.0")]))
    assert configured.analyze(plugin) == []


def test_requests_and_limits_on_every_container(pack):
    no_limits = container(resources={"requests": {"cpu": "100m", "memory": "512Mi"}})
    found = only(pack.analyze(deployment(spec=pod_spec([no_limits]))), "container-resources")
    assert "container 'model' sets no resources.limits.cpu, resources.limits.memory. Fix: give every container " \
           "CPU and memory requests and limits" in found[0].message
    init = container("fetch", resources={"limits": {"cpu": "1", "memory": "1Gi"}})
    found = only(pack.analyze(deployment(spec=pod_spec([container()], init=[init]))), "container-resources")
    assert "init container 'fetch' sets no resources.requests.cpu, resources.requests.memory" in found[0].message
    debug = dict(container("debug"), resources={})
    spec = pod_spec([container()], ephemeralContainers=[debug])
    assert "container-resources" not in {d.policy for d in pack.analyze(deployment(spec=spec))}


def test_required_resources_come_from_config(start_pack):
    configured = start_pack({"container-resources": {"required": ["requests.cpu", "requests.memory",
                                                                  "limits.memory"]}})
    no_cpu_limit = container(resources={"requests": {"cpu": "100m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}})
    assert configured.analyze(deployment(spec=pod_spec([no_cpu_limit]))) == []


@pytest.mark.parametrize("path, value, problem", [
    ("spec.template.spec.hostNetwork", True, "spec.hostNetwork: must not be true"),
    ("spec.template.spec.volumes", [{"name": "sock", "hostPath": {"path": "/var/run"}}],
     "spec.volumes[0] (sock): hostPath volumes are not allowed"),
    ("spec.template.spec.securityContext.runAsNonRoot", None,
     "containers[0] (container 'model').securityContext.runAsNonRoot: must be true"),
    ("spec.template.spec.securityContext.sysctls", [{"name": "kernel.msgmax", "value": "65536"}],
     "spec.securityContext.sysctls[0]: kernel.msgmax is not a safe sysctl"),
    ("spec.template.spec.containers.0.securityContext.privileged", True, ".privileged: must not be true"),
    ("spec.template.spec.containers.0.securityContext.allowPrivilegeEscalation", True,
     ".allowPrivilegeEscalation: must be false"),
    ("spec.template.spec.containers.0.securityContext.runAsUser", 0.0, ".runAsUser: must not be 0 (root)"),
    ("spec.template.spec.containers.0.securityContext.capabilities", {"add": ["SYS_ADMIN"]},
     ".capabilities.drop: must include ALL"),
    ("spec.template.spec.containers.0.securityContext.capabilities", {"drop": ["ALL"], "add": ["SYS_ADMIN"]},
     ".capabilities.add: may only add NET_BIND_SERVICE"),
    ("spec.template.spec.containers.0.securityContext.seccompProfile", {"type": "Unconfined"},
     ".seccompProfile.type: must not be Unconfined"),
    ("spec.template.spec.containers.0.securityContext.readOnlyRootFilesystem", False,
     ".readOnlyRootFilesystem: must be true (write to an emptyDir volume instead)"),
    ("spec.template.spec.containers.0.ports.0.hostPort", 5001.0, "containers[0] (container 'model').ports[0].hostPort"),
])
def test_pod_security_restricted(pack, path, value, problem):
    good = deployment()
    assert pack.analyze(good) == []
    properties = changed(good.properties, path, value)
    if path.endswith("securityContext.runAsNonRoot"):
        del properties["spec"]["template"]["spec"]["containers"][0]["securityContext"]["runAsNonRoot"]
    bad = type(good)(**{**good.__dict__, "properties": properties})
    found = only(pack.analyze(bad), "pod-security-restricted")
    assert mandatory(found) == found and len(found) == 1
    assert found[0].message.startswith('Every pod meets Pod Security Standards "restricted"')
    assert "Deployment aks-serving-models/diabetes (Pulumi resource diabetes-deployment) does not meet Pod Security " \
           "Standards \"restricted\": " in found[0].message
    assert problem in found[0].message
    assert "Fix: run as a non-root user with runAsNonRoot: true" in found[0].message


def test_pod_level_settings_cover_the_containers(pack):
    """runAsNonRoot and seccompProfile may be set once for the pod."""
    bare = container()
    for field in ("runAsNonRoot", "seccompProfile"):
        del bare["securityContext"][field]
    assert pack.analyze(deployment(spec=pod_spec([bare]))) == []
    spec = pod_spec([bare])
    del spec["securityContext"]["seccompProfile"]
    found = only(pack.analyze(deployment(spec=spec)), "pod-security-restricted")
    assert ".seccompProfile.type: must be RuntimeDefault or Localhost" in found[0].message


def test_exempt_namespaces_and_the_read_only_root_filesystem_option(pack, start_pack):
    plugin_spec = pod_spec([container()], volumes=[{"name": "plugins", "hostPath": {"path": "/var/lib/kubelet"}}])
    plugin = deployment("nvidia-device-plugin", "gpu", namespace="kube-system", spec=plugin_spec,
                        kind_type="kubernetes:apps/v1:DaemonSet")
    assert pack.analyze(plugin) == []  # kube-system is exempt by default
    writable = changed(deployment().properties, "spec.template.spec.containers.0.securityContext."
                       "readOnlyRootFilesystem", False)
    relaxed = start_pack({"pod-security-restricted": {"readOnlyRootFilesystem": False, "exemptNamespaces": []}})
    assert relaxed.analyze(type(plugin)(**{**deployment().__dict__, "properties": writable})) == []
    assert [d.policy for d in relaxed.analyze(plugin)] == ["pod-security-restricted"]

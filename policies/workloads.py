"""Workloads (Deployments, StatefulSets, DaemonSets, ReplicaSets, Jobs, CronJobs, Pods): images by digest,
CPU and memory requests and limits on every container, and Pod Security Standards "restricted" with a
read-only root filesystem."""
from __future__ import annotations

import re
from typing import Any

import kube
from support import (LATER, UNKNOWN, Findings, Resource, Setting, as_dict, as_list, get, resource_policy,
                     strings)

DIGEST = re.compile(r"@sha256:[0-9a-f]{64}\Z")


def _exempt(resource: Resource, config: dict) -> bool:
    namespace = kube.namespace_of(resource)
    return isinstance(namespace, str) and namespace in config["exemptNamespaces"]


def _pod_spec(resource: Resource, findings: Findings) -> Any:
    spec = kube.pod_spec(resource)
    if spec is UNKNOWN:
        findings.cannot_decide(f"{resource.label}: the pod spec is not known yet; {LATER}")
        return None
    return spec if isinstance(spec, dict) else None


def _exemptions(default: tuple[str, ...] = ()) -> Setting:
    return strings("exemptNamespaces", "Namespaces whose workloads this policy skips.", default)


# ---- images by digest -----------------------------------------------------------------------------------


def _images(resource: Resource, config: dict, findings: Findings) -> None:
    spec = _pod_spec(resource, findings)
    if spec is None or _exempt(resource, config):
        return
    for container in kube.containers(spec):
        image = get(container.spec, "image")
        if image is UNKNOWN:
            findings.cannot_decide(f"{resource.label}: the image of {container.label} is not known yet (its "
                                   f"digest comes from a build or registry lookup in this update); {LATER}")
        elif not isinstance(image, str):
            findings.violation(f"{resource.label}: {container.label} names no image. Fix: set its image as "
                               "<registry>/<repository>@sha256:<digest>")
        elif not DIGEST.search(image) and not any(image.startswith(p) for p in config["exemptImages"]):
            findings.violation(f"{resource.label}: {container.label} runs {image}, not pinned by digest, so a "
                               "pushed tag can change what runs. Fix: reference the image as "
                               "<registry>/<repository>@sha256:<digest> (the digest of the tag you tested)")


# ---- requests and limits --------------------------------------------------------------------------------


def _resources(resource: Resource, config: dict, findings: Findings) -> None:
    spec = _pod_spec(resource, findings)
    if spec is None or _exempt(resource, config):
        return
    for container in kube.containers(spec):
        if container.group == "ephemeralContainers":
            continue  # Kubernetes does not allow resources on ephemeral (debug) containers
        if container.spec is UNKNOWN or get(container.spec, "resources") is UNKNOWN:
            findings.cannot_decide(f"{resource.label}: the resources of {container.label} are not known yet; {LATER}")
            continue
        missing, pending = [], []
        for item in config["required"]:
            section, _, name = item.partition(".")
            value = get(container.spec, "resources", section, name)
            if value is UNKNOWN:
                pending.append(item)
            elif value in (None, ""):
                missing.append(item)
        if pending:
            findings.cannot_decide(f"{resource.label}: {', '.join(pending)} of {container.label} not known yet; "
                                   f"{LATER}")
        if missing:
            findings.violation(f"{resource.label}: {container.label} sets no resources.{', resources.'.join(missing)}. "
                               "Fix: give every container CPU and memory requests and limits (for models: cpu, "
                               "memoryInGB and their limits in the stack config)")


# ---- Pod Security Standards "restricted" ----------------------------------------------------------------

# https://kubernetes.io/docs/concepts/security/pod-security-standards/ (v1.30)
_RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                       "projected", "secret"}
_SAFE_SYSCTLS = {"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
                 "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
                 "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
                 "net.ipv4.tcp_keepalive_probes"}
_SELINUX_TYPES = {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}
_SECCOMP_OK = {"RuntimeDefault", "Localhost"}


class _Problems:
    """Problems with a pod's security settings; an unknown value is noted as pending, not as a problem."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.pending: list[str] = []

    def require(self, value: Any, ok: bool, where: str, problem: str) -> None:
        if value is UNKNOWN:
            self.pending.append(where)
        elif not ok:
            self.problems.append(f"{where}: {problem}")


def _pod_level(spec: dict, problems: _Problems) -> None:
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        value = spec.get(field)
        problems.require(value, value in (None, False), f"spec.{field}", "must not be true")
    security = spec.get("securityContext")
    if security is UNKNOWN:
        problems.pending.append("spec.securityContext")
        return
    security = as_dict(security)
    _common_context(security, "spec.securityContext", problems)
    if security.get("sysctls") is UNKNOWN:
        problems.pending.append("spec.securityContext.sysctls")
    for index, sysctl in enumerate(as_list(security.get("sysctls"))):
        name = get(sysctl, "name")
        problems.require(name, name in _SAFE_SYSCTLS, f"spec.securityContext.sysctls[{index}]",
                         f"{name} is not a safe sysctl")
    volumes = spec.get("volumes")
    if volumes is UNKNOWN:
        problems.pending.append("spec.volumes")
    for index, volume in enumerate(as_list(volumes)):
        kinds = [k for k in as_dict(volume) if k != "name"]
        bad = [k for k in kinds if k not in _RESTRICTED_VOLUMES]
        problems.require(volume, not bad, f"spec.volumes[{index}] ({get(volume, 'name')})",
                         f"{', '.join(bad)} volumes are not allowed (only {', '.join(sorted(_RESTRICTED_VOLUMES))})")


def _common_context(security: dict, where: str, problems: _Problems) -> None:
    """Settings that may appear in a pod's and in a container's securityContext."""
    run_as_user = security.get("runAsUser")
    problems.require(run_as_user, run_as_user != 0, f"{where}.runAsUser", "must not be 0 (root)")
    host_process = get(security, "windowsOptions", "hostProcess")
    problems.require(host_process, host_process in (None, False), f"{where}.windowsOptions.hostProcess",
                     "must not be true")
    selinux = security.get("seLinuxOptions")
    if isinstance(selinux, dict):
        for field in ("user", "role"):
            value = selinux.get(field)
            problems.require(value, value in (None, ""), f"{where}.seLinuxOptions.{field}", "must not be set")
        value = selinux.get("type")
        problems.require(value, value is None or value in _SELINUX_TYPES, f"{where}.seLinuxOptions.type",
                         f"must be one of {', '.join(sorted(t for t in _SELINUX_TYPES if t))}")
    seccomp = get(security, "seccompProfile", "type")
    problems.require(seccomp, seccomp != "Unconfined", f"{where}.seccompProfile.type", "must not be Unconfined")
    apparmor = get(security, "appArmorProfile", "type")
    problems.require(apparmor, apparmor in (None, "RuntimeDefault", "Localhost"), f"{where}.appArmorProfile.type",
                     "must be RuntimeDefault or Localhost")


def _container_level(spec: dict, container: kube.Container, config: dict, problems: _Problems) -> None:
    where = f"{container.path} ({container.label})"
    if container.spec is UNKNOWN:
        problems.pending.append(where)
        return
    pod = as_dict(spec.get("securityContext"))
    security = container.spec.get("securityContext")
    if security is UNKNOWN:
        problems.pending.append(f"{where}.securityContext")
        return
    security = as_dict(security)
    prefix = f"{where}.securityContext"
    _common_context(security, prefix, problems)
    privileged = security.get("privileged")
    problems.require(privileged, privileged in (None, False), f"{prefix}.privileged", "must not be true")
    escalation = security.get("allowPrivilegeEscalation")
    problems.require(escalation, escalation is False, f"{prefix}.allowPrivilegeEscalation", "must be false")
    proc_mount = security.get("procMount")
    problems.require(proc_mount, proc_mount in (None, "Default"), f"{prefix}.procMount", "must be Default")
    non_root = security.get("runAsNonRoot")
    if non_root is None:
        non_root = pod.get("runAsNonRoot")
    problems.require(non_root, non_root is True, f"{prefix}.runAsNonRoot",
                     "must be true (here or in spec.securityContext)")
    seccomp = get(security, "seccompProfile", "type")
    if seccomp is None:
        seccomp = get(pod, "seccompProfile", "type")
    problems.require(seccomp, seccomp in _SECCOMP_OK, f"{prefix}.seccompProfile.type",
                     "must be RuntimeDefault or Localhost (here or in spec.securityContext)")
    capabilities = security.get("capabilities")
    drop, add = get(capabilities, "drop"), get(capabilities, "add")
    if isinstance(drop, list) and UNKNOWN in drop and "ALL" not in drop:
        drop = UNKNOWN  # an unknown entry may be ALL
    problems.require(drop, isinstance(drop, list) and "ALL" in drop, f"{prefix}.capabilities.drop",
                     "must include ALL")
    if isinstance(add, list) and UNKNOWN in add:
        problems.pending.append(f"{prefix}.capabilities.add")
    added = [c for c in as_list(add) if c is not UNKNOWN]
    problems.require(add, all(c == "NET_BIND_SERVICE" for c in added), f"{prefix}.capabilities.add",
                     "may only add NET_BIND_SERVICE")
    if container.spec.get("ports") is UNKNOWN:
        problems.pending.append(f"{where}.ports")
    for index, port in enumerate(as_list(container.spec.get("ports"))):
        host_port = get(port, "hostPort")
        problems.require(host_port, host_port in (None, 0), f"{where}.ports[{index}].hostPort", "must not be set")
    if config["readOnlyRootFilesystem"] and container.group != "ephemeralContainers":
        read_only = security.get("readOnlyRootFilesystem")
        problems.require(read_only, read_only is True, f"{prefix}.readOnlyRootFilesystem",
                         "must be true (write to an emptyDir volume instead)")


def _restricted(resource: Resource, config: dict, findings: Findings) -> None:
    spec = _pod_spec(resource, findings)
    if spec is None or _exempt(resource, config):
        return
    problems = _Problems()
    _pod_level(spec, problems)
    annotations = as_dict(get(resource.props, *kube.POD_SPEC_PATHS[resource.type][:-1], "metadata", "annotations"))
    for key, value in annotations.items():
        if key.startswith("container.apparmor.security.beta.kubernetes.io/"):
            problems.require(value, value == "runtime/default" or str(value).startswith("localhost/"),
                             f"annotation {key}", "must be runtime/default or localhost/<profile>")
    for container in kube.containers(spec):
        _container_level(spec, container, config, problems)
    if problems.pending:
        pending = ", ".join(dict.fromkeys(problems.pending))
        findings.cannot_decide(f"{resource.label}: {pending} not known yet; {LATER}")
    if problems.problems:
        findings.violation(f"{resource.label} does not meet Pod Security Standards \"restricted\": "
                           f"{'; '.join(problems.problems)}. Fix: run as a non-root user with "
                           "runAsNonRoot: true, seccompProfile RuntimeDefault, allowPrivilegeEscalation: false, "
                           "capabilities.drop [ALL], a read-only root filesystem, and only configMap, secret, "
                           "emptyDir, projected, downwardAPI, csi, ephemeral or PVC volumes")


POLICIES = [
    resource_policy(
        "images-by-digest",
        "Every container image is referenced by digest (<repository>@sha256:<digest>), never by a tag alone.",
        kube.is_workload, _images,
        settings=[_exemptions(), strings("exemptImages", "Image prefixes that may be referenced by tag.")]),
    resource_policy(
        "container-resources",
        "Every container sets CPU and memory requests and limits.",
        kube.is_workload, _resources,
        settings=[_exemptions(), strings("required", "The resources.<requests|limits>.<resource> every container "
                                         "sets.", ["requests.cpu", "requests.memory", "limits.cpu", "limits.memory"])]),
    resource_policy(
        "pod-security-restricted",
        "Every pod meets Pod Security Standards \"restricted\" and runs with a read-only root filesystem.",
        kube.is_workload, _restricted,
        settings=[_exemptions(("kube-system",)),
                  Setting("readOnlyRootFilesystem", {"type": "boolean", "description": "Also require "
                          "readOnlyRootFilesystem: true on every container."}, True)]),
]

"""Cluster plumbing the model services stand on: their namespaces, fenced in, and the GPU device plugin.

Each models namespace enforces Pod Security "restricted", holds the `model` ServiceAccount federated to
the models' Azure identity, and denies all traffic by default: only router pods reach the models' port,
and models may only resolve names and call HTTPS (storage and Entra ID for the fetcher, and whatever
APIs scoring code calls). The NVIDIA device plugin is installed when a GPU pool exists: AKS installs
the driver on GPU nodes, not the plugin that makes `nvidia.com/gpu` schedulable.
"""
from __future__ import annotations

from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from components.cluster import ACCELERATOR_LABEL
from components.image import PORT as MODEL_PORT
from components.model_service import GPU_TOLERATION
from components.model_store import SERVICE_ACCOUNT
from components.workload import COMPONENT_LABEL, labels, namespace_labels, resources

DEVICE_PLUGIN_IMAGE = "nvcr.io/nvidia/k8s-device-plugin:v0.17.4"  # resolved to its digest at deploy time


class ModelsNamespace(pulumi.ComponentResource):
    namespace: k8s.core.v1.Namespace
    name: pulumi.Output[str]  # the namespace's name, once it exists: objects placed with it wait for it

    def __init__(self, name: str, namespace: str, *, router_namespace: str, client_id: pulumi.Input[str],
                 tenant_id: pulumi.Input[str], opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("aks-serving:index:ModelsNamespace", name, None, opts)
        meta = lambda n: {"name": n, "namespace": namespace, "labels": labels(n, "models")}  # noqa: E731
        self.namespace = k8s.core.v1.Namespace(f"{name}-namespace", metadata={"name": namespace,
                                                                             "labels": namespace_labels()},
                                               opts=pulumi.ResourceOptions(parent=self))
        opts_ns = pulumi.ResourceOptions(parent=self, depends_on=[self.namespace])
        k8s.core.v1.ServiceAccount(
            f"{name}-account",
            metadata={**meta(SERVICE_ACCOUNT), "annotations": {"azure.workload.identity/client-id": client_id,
                                                               "azure.workload.identity/tenant-id": tenant_id}},
            automount_service_account_token=False, opts=opts_ns)
        k8s.networking.v1.NetworkPolicy(
            f"{name}-default-deny", metadata=meta("default-deny"),
            spec={"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}, opts=opts_ns)
        k8s.networking.v1.NetworkPolicy(
            f"{name}-from-router", metadata=meta("from-router"),
            spec={"podSelector": {"matchLabels": {COMPONENT_LABEL: "model"}}, "policyTypes": ["Ingress"],
                  "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {
                                             "kubernetes.io/metadata.name": router_namespace}},
                                         "podSelector": {"matchLabels": {COMPONENT_LABEL: "router"}}}],
                               "ports": [{"port": MODEL_PORT, "protocol": "TCP"}]}]},
            opts=opts_ns)
        k8s.networking.v1.NetworkPolicy(
            f"{name}-egress", metadata=meta("dns-and-https"),
            spec={"podSelector": {}, "policyTypes": ["Egress"],
                  "egress": [
                      {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}],
                       "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]},
                      {"ports": [{"port": 443, "protocol": "TCP"}]},
                  ]},
            opts=opts_ns)
        self.name = self.namespace.metadata.apply(lambda m: m.name)
        self.register_outputs({"namespace": namespace})


def device_plugin(name: str, image: pulumi.Input[str], opts: pulumi.ResourceOptions) -> k8s.apps.v1.DaemonSet:
    """NVIDIA's device plugin on the GPU nodes only, tolerating their taint (kube-system, as NVIDIA ships it)."""
    match = {"app.kubernetes.io/name": "nvidia-device-plugin", COMPONENT_LABEL: "device-plugin"}
    return k8s.apps.v1.DaemonSet(
        name,
        metadata={"name": "nvidia-device-plugin", "namespace": "kube-system",
                  "labels": labels("nvidia-device-plugin", "device-plugin")},
        spec={
            "selector": {"matchLabels": match},
            "updateStrategy": {"type": "RollingUpdate"},
            "template": {
                "metadata": {"labels": {**labels("nvidia-device-plugin", "device-plugin")}},
                "spec": {
                    "priorityClassName": "system-node-critical",
                    "nodeSelector": {ACCELERATOR_LABEL: "nvidia-gpu"},
                    "tolerations": [GPU_TOLERATION],
                    "automountServiceAccountToken": False,
                    "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [{
                        "name": "nvidia-device-plugin", "image": image,
                        "env": [{"name": "FAIL_ON_INIT_ERROR", "value": "false"}],
                        # The plugin registers through the kubelet's socket folder: a hostPath no
                        # "restricted" pod may have, which is why it lives in kube-system.
                        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                            "capabilities": {"drop": ["ALL"]}},
                        "resources": resources(0.05, 0.0625, cpu_limit=0.2, memory_gb_limit=0.125),
                        "volumeMounts": [{"name": "device-plugin", "mountPath": "/var/lib/kubelet/device-plugins"}],
                    }],
                    "volumes": [{"name": "device-plugin", "hostPath": {"path": "/var/lib/kubelet/device-plugins",
                                                                        "type": "Directory"}}],
                },
            },
        },
        opts=opts)

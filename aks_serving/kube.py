"""The Kubernetes side of a deployed stack, through the official `kubernetes` client.

The kubeconfig is a secret stack output: it is loaded from memory, never written out by us (the client
itself writes only a cluster's CA data, and any client certificate, to 0600 temporary files it removes at
exit). An AKS kubeconfig with Entra ID runs `kubelogin get-token` as an exec plugin, which the client runs
as kubectl would.

The router's admin port is reached by port-forward, not by the API server's pod proxy: the router's
NetworkPolicy (components/router.py) admits only peer router pods to that port, and the API server's
proxy arrives at the pod from outside it (through konnectivity on AKS), so it is refused on a real
cluster. A port-forward is carried by the kubelet into the pod's own network namespace and connects to
the port on the pod's loopback, which no NetworkPolicy filters. The client speaks port-forward over a
WebSocket (`v4.channel.k8s.io`), which the API server hands through to the kubelet; the user needs
`create` on `pods/portforward` in the router's namespace (kubectl port-forward needs the same).
"""
from __future__ import annotations

import base64
import http.client
from typing import Iterator

import urllib3
import yaml
from kubernetes import client
from kubernetes import config as kube_config
from kubernetes.client.rest import ApiException
from kubernetes.stream import portforward
from kubernetes.watch.watch import iter_resp_lines

from aks_serving.errors import CommandError

MERGE_PATCH = "application/merge-patch+json"
PORT_FORWARD_TIMEOUT_SECONDS = 10
FIELD_MANAGER = "aks-serving-cli"  # who changed a key, in the Secret's managedFields


def api_client(kubeconfig: str) -> client.ApiClient:
    configuration = client.Configuration()
    try:
        kube_config.load_kube_config_from_dict(yaml.safe_load(kubeconfig), client_configuration=configuration,
                                               persist_config=False)
    except kube_config.ConfigException as err:  # e.g. kubelogin missing or its login failed
        raise CommandError(f"the stack's kubeconfig: {err}") from None
    return client.ApiClient(configuration)


class Cluster:
    """The handful of API calls the verbs make, with errors said in a sentence."""

    def __init__(self, api: client.ApiClient) -> None:
        self.core = client.CoreV1Api(api)
        self.coordination = client.CoordinationV1Api(api)

    def config_map_data(self, namespace: str, name: str) -> dict[str, str]:
        return _call(f"configmap {namespace}/{name}", self.core.read_namespaced_config_map, name, namespace).data or {}

    def pods(self, namespace: str, labels: dict[str, str]) -> list[client.V1Pod]:
        selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        return _call(f"pods in {namespace}", self.core.list_namespaced_pod, namespace, label_selector=selector).items

    def log_lines(self, pod: client.V1Pod, container: str, tail: int | None, follow: bool) -> Iterator[str]:
        meta = pod.metadata
        response = _call(f"the log of pod {meta.namespace}/{meta.name}", self.core.read_namespaced_pod_log,
                         meta.name, meta.namespace, container=container, tail_lines=tail, follow=follow,
                         _preload_content=False)
        try:
            yield from iter_resp_lines(response)
        finally:
            response.release_conn()

    def secret_with_labels(self, namespace: str, labels: dict[str, str]) -> client.V1Secret:
        selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        found = _call(f"secrets in {namespace}", self.core.list_namespaced_secret, namespace,
                      label_selector=selector).items
        if len(found) != 1:
            raise CommandError(f"expected one Secret labelled {selector} in {namespace}, found {len(found)}; "
                               f"has `pulumi up` run?")
        return found[0]

    def patch_secret_field(self, secret: client.V1Secret, field: str, value: str) -> None:
        """Only `field` changes: a merge patch leaves the other key as it is, so clients using it never see a
        moment without it (an update of the whole object could race a concurrent one; this cannot).

        The Secret is Pulumi's (server-side apply): once the stack config records the same value, the next
        `pulumi up` applies what the cluster already has, and the field is shared instead of put back."""
        body = {"data": {field: base64.b64encode(value.encode()).decode()}}
        meta = secret.metadata
        _call(f"secret {meta.namespace}/{meta.name}", self.core.patch_namespaced_secret, meta.name, meta.namespace,
              body, field_manager=FIELD_MANAGER, _content_type=MERGE_PATCH)

    def lease_holder(self, namespace: str, name: str) -> str | None:
        try:
            return self.coordination.read_namespaced_lease(name, namespace).spec.holder_identity
        except ApiException as err:
            if err.status == 404:
                return None
            raise CommandError(_api_problem(f"lease {namespace}/{name}", err)) from None

    def get_through_port_forward(self, pod: client.V1Pod, port: int, path: str) -> bytes:
        """`GET path` on the pod's own `port`, through a port-forward (see the module's docstring)."""
        meta = pod.metadata
        forward = _call(f"a port-forward to pod {meta.namespace}/{meta.name}", portforward,
                        self.core.connect_get_namespaced_pod_portforward, meta.name, meta.namespace, ports=str(port))
        connection = http.client.HTTPConnection("localhost", port)
        connection.sock = forward.socket(port)  # http.client sends over the forwarded stream as it is
        connection.sock.settimeout(PORT_FORWARD_TIMEOUT_SECONDS)  # (its own timeout applies only to connect())
        try:
            connection.request("GET", path, headers={"Connection": "close"})
            response = connection.getresponse()
            body = response.read()
        except OSError as err:
            raise CommandError(f"pod {meta.name} port {port}: {forward.error(port) or err}") from None
        finally:
            connection.close()
            forward.close()
        if response.status != 200:
            raise CommandError(f"pod {meta.name} port {port}: GET {path} answered {response.status}")
        return body


def _call(what: str, method, *args, **kwargs):
    try:
        return method(*args, **kwargs)
    except ApiException as err:
        raise CommandError(_api_problem(what, err)) from None
    except urllib3.exceptions.HTTPError as err:
        raise CommandError(f"cannot reach the cluster for {what}: {err}") from None


def _api_problem(what: str, err: ApiException) -> str:
    if err.status == 0:  # the client's own failure to connect (status 0), e.g. a refused WebSocket
        return f"cannot reach the cluster for {what}: {err.reason}"
    hint = {401: " (is your Azure login current? kubelogin gets the token)",
            403: " (your identity lacks this permission on the cluster)", 404: " (not found)"}.get(err.status, "")
    return f"{what}: the API server answered {err.status} {err.reason}{hint}"

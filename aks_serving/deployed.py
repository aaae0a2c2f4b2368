"""The deployed stack as a target: its outputs name the cluster and the router's namespace; the router's
own ConfigMap says the rest (each service's namespace, each endpoint's versions, how auth is set up)."""
from __future__ import annotations

import base64
import json
import tempfile
from pathlib import Path

from aks_serving.errors import CommandError
from aks_serving.kube import Cluster, api_client
from aks_serving.target import LogSource
from components.kubeconfig import rewrite_kubeconfig
from components.router_config import CONFIG_FILE
from components.workload import selector
from local.secrets import write_private
from router.auth import mint_token
from router.settings import RouterConfig, TokenAuth

ROUTER_CONFIG_MAP = "router-config"  # components/router.py mounts the RouterConfig from it
ADMIN_PORT_NAME = "admin"  # the router container's named port for /status (components/router.py)


class DeployedStack:
    def __init__(self, stack: str | None, outputs: dict, login_mode: str | None = None) -> None:
        self.label = f"stack {stack}" if stack else "the selected stack"
        self.stack = stack
        self.outputs = outputs
        self.namespace = outputs["routerNamespace"]
        kubeconfig = outputs["kubeconfig"]
        if login_mode is not None:  # the export logs in as `pulumi up` does, which may be CI's way
            kubeconfig = rewrite_kubeconfig(kubeconfig, login_mode)
        self.cluster = Cluster(api_client(kubeconfig))
        self._config: dict | None = None

    def router_config(self) -> dict:
        if self._config is None:
            data = self.cluster.config_map_data(self.namespace, ROUTER_CONFIG_MAP)
            self._config = json.loads(data[CONFIG_FILE])
        return self._config

    # ---- logs ----------------------------------------------------------------------------------

    def log_sources(self, service: str, tail: int | None, follow: bool) -> list[LogSource]:
        namespace = self.router_config()["services"][service]["backend"]["namespace"]
        pods = self.cluster.pods(namespace, selector(service, "model"))
        # The model server's container: the pod's one container (the model fetcher is an init container).
        return [LogSource(p.metadata.name, self.cluster.log_lines(p, p.spec.containers[0].name, tail, follow))
                for p in sorted(pods, key=lambda p: p.metadata.name)]

    # ---- status --------------------------------------------------------------------------------

    def status(self) -> dict:
        """The leader's /status (its utilization and scaling decisions count every router pod's load), with
        in-flight and queued requests summed over all router pods, each of which queues its own."""
        pods = [p for p in self.cluster.pods(self.namespace, selector("router", "router")) if _ready(p)]
        if not pods:
            raise CommandError(f"no ready router pod in namespace {self.namespace}")
        settings = RouterConfig.model_validate(self.router_config()).router.cluster
        leader = self.cluster.lease_holder(self.namespace, settings.lease_name if settings else "router-leader")
        pods.sort(key=lambda p: p.metadata.name != leader)  # the leader first, if it is ready
        documents = [json.loads(self.cluster.get_through_port_forward(p, _admin_port(p), "/status")) for p in pods]
        return _merge(documents)

    # ---- keys ----------------------------------------------------------------------------------

    def read_keys(self, owner: str, auth: dict) -> dict[str, str]:
        secret = self.cluster.secret_with_labels(self.namespace, auth["keySecretLabels"])
        return {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}

    def write_key(self, owner: str, auth: dict, field: str, value: str) -> None:
        secret = self.cluster.secret_with_labels(self.namespace, auth["keySecretLabels"])
        self.cluster.patch_secret_field(secret, field, value)

    def keep_key_advice(self, owner: str, kind: str, field: str) -> list[str]:
        stack = f" --stack {self.stack}" if self.stack else ""
        which = "primary" if field == "primaryKey" else "secondary"
        return [
            "The cluster has it now. Record it in the stack config, or a later `pulumi up` may put the stack's",
            "key back (the key goes through the pipe, never into your shell history or the process list):",
            f"  python -m aks_serving keys {owner}{stack} --only {which} | \\",
            f"    pulumi config set --secret --path '{kind}.{owner}.keys.{field}'{stack}",
        ]

    # ---- tokens --------------------------------------------------------------------------------

    def mint_token(self, owner: str, token_settings: dict) -> dict:
        pem = self.outputs.get("tokenSigningKey")
        if not pem:
            raise CommandError(f"{self.label} has no tokenSigningKey output; has `pulumi up` finished?")
        # mint_token reads the key from a file: a 0600 one in a 0700 folder, gone when the token is made.
        with tempfile.TemporaryDirectory(prefix="aks-serving-") as folder:
            key_file = Path(folder) / "signing.pem"
            write_private(key_file, pem.encode())
            settings = TokenAuth.model_validate({**token_settings, "signingKeyFile": str(key_file)})
            return mint_token(settings, subject=f"aks-serving-cli/{owner}")


def _ready(pod) -> bool:
    conditions = (pod.status.conditions if pod.status else None) or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


def _admin_port(pod) -> int:
    for container in pod.spec.containers:
        for port in container.ports or []:
            if port.name == ADMIN_PORT_NAME:
                return port.container_port
    raise CommandError(f"router pod {pod.metadata.name} has no port named {ADMIN_PORT_NAME}")


def _merge(documents: list[dict]) -> dict:
    merged = json.loads(json.dumps(documents[0]))
    for name, service in merged.items():
        for field in ("inFlight", "queued"):
            service[field] = sum(d.get(name, {}).get(field, 0) for d in documents)
    return merged

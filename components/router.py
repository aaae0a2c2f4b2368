"""Router: the request router on the cluster (azureml-fe's job), built from `router/` and deployed by digest.

Its own namespace; a ServiceAccount whose Roles allow exactly the calls `router/README.md` lists (and
the router's stand-in API server test records): EndpointSlices and `deployments/scale` in the models
namespaces, Leases, key Secrets and peer EndpointSlices in its own, nothing cluster-wide. The RouterConfig
is rendered from the typed stack config by the same code as the local deployment and mounted from a
ConfigMap; keys are read from labelled Secrets through the API, so a new key or service needs no restart.
One pod on dev-test; on production at least two and a CPU HPA that owns the count (so Pulumi never sets
`spec.replicas` there). A LoadBalancer Service (public, or internal in a named subnet) and a headless Service
through which router pods find each other to split capacity and elect the scaling leader.
"""
from __future__ import annotations

import hashlib
import math
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from components import app_insights
from components.auto_tls import SOLVER_LABEL, SOLVER_PORT, AutoTls
from components.config import AuthSettings, DeploymentSpec, StackConfig
from components.image import PORT as MODEL_PORT
from components.keys import key_secret_labels
from components.router_config import (CONFIG_FILE, TOKEN_ISSUER, check_config_size, config_text, oidc_token_auth,
                                      render_router_config)
from components.workload import (container_security, labels, namespace_labels, pod_security, resources,
                                 selector, tmp_volume)

NAME = "router"
HTTP_PORT, ADMIN_PORT, HTTPS_PORT = 8080, 8081, 8443
ACME_PORT = 8088  # auto TLS: the load balancer's port 80 (ACME challenges, and redirects to HTTPS)
UID = 10001  # router/Dockerfile's USER
CONFIG_DIR, TOKEN_DIR, TLS_DIR = "/etc/router", "/etc/router/token", "/etc/router/tls"
PEER_SERVICE = "router-peers"
PRE_STOP_SECONDS = 5  # the load balancer stops sending before the router stops accepting
CPU_TARGET_PERCENT = 70


def router_config(cfg: StackConfig, namespace: str) -> dict:
    """The RouterConfig for the cluster: Kubernetes backends, keys from labelled Secrets."""

    def backend(service: str, spec: DeploymentSpec) -> dict:
        return {"kind": "kubernetes", "namespace": cfg.models_namespace_of(spec), "service": service,
                "deployment": service, "port": MODEL_PORT}

    def auth(name: str, settings: AuthSettings) -> dict:
        if settings.auth_mode == "key":
            return {"mode": "key", "keySecretLabels": key_secret_labels(name)}
        if settings.token_auth is not None:  # the pods need outbound HTTPS to the issuer (no egress policy here)
            return oidc_token_auth(settings.token_auth)
        if settings.auth_mode == "token":
            return {"mode": "token", "token": {"issuer": TOKEN_ISSUER, "audience": name,
                                               "publicKeyFiles": [f"{TOKEN_DIR}/public.pem"]}}
        return {"mode": "none"}

    options = {"cluster": {"namespace": namespace, "peerService": PEER_SERVICE},
               "shutdownGraceSeconds": shutdown_grace_seconds(cfg)}
    if cfg.router.tls.mode != "off":
        # The certificate files are re-read when they change: cert-manager renews them in place.
        options["tls"] = {"certFile": f"{TLS_DIR}/tls.crt", "keyFile": f"{TLS_DIR}/tls.key", "port": HTTPS_PORT}
    if cfg.router.tls.mode == "auto":
        # Port 80 answers only ACME challenges (forwarded to cert-manager's solver pods) and redirects.
        options["acme"] = {"port": ACME_PORT, "solverLabelSelector": f"{SOLVER_LABEL}=true",
                           "solverPort": SOLVER_PORT}
    return render_router_config(cfg, backend, auth, router=options)


def router_config_text(cfg: StackConfig) -> str:
    """The ConfigMap's text; a ConfigError when the API server would refuse it (main() asks first)."""
    text = config_text(router_config(cfg, cfg.router.namespace))
    check_config_size(text, sum(1 for _ in cfg.deployments()))
    return text


def shutdown_grace_seconds(cfg: StackConfig) -> int:
    """On SIGTERM, in-flight requests may finish: as long as the longest scoring timeout, plus a margin."""
    longest = max((spec.scoring_timeout_ms for _, _, spec in cfg.deployments()), default=60000)
    return math.ceil(longest / 1000) + 5


def uses_token_auth(cfg: StackConfig) -> bool:
    """Whether any service or endpoint takes tokens signed by the stack's own key (those that name an OIDC
    issuer need no signing key)."""
    return any(s.uses_stack_tokens for s in [*cfg.services.values(), *cfg.endpoints.values()])


class Router(pulumi.ComponentResource):
    namespace: pulumi.Output[str]
    address: pulumi.Output[Optional[str]]  # the load balancer's IP (or DNS name); unknown until it exists
    host: pulumi.Output[str]  # what clients call: the TLS name, else the address
    scheme: str

    def __init__(self, name: str, cfg: StackConfig, *, config_json: str, image: pulumi.Input[str], location: str,
                 models_namespaces: dict[str, k8s.core.v1.Namespace], token_public_key: Optional[pulumi.Input[str]],
                 app_insights_connection_string: Optional[pulumi.Output[str]] = None,
                 opts: Optional[pulumi.ResourceOptions] = None):
        """`app_insights_connection_string`: given when a service has enableAppInsights; the router's pods read
        it from a Secret in their namespace."""
        super().__init__("aks-serving:index:Router", name, None, opts)
        self._name, self._cfg = name, cfg
        self.dns_name = f"{cfg.router.tls.leaf_domain_label}.{location}.cloudapp.azure.com"
        child = pulumi.ResourceOptions(parent=self)
        ns_name = cfg.router.namespace
        namespace = k8s.core.v1.Namespace(f"{name}-namespace", metadata={"name": ns_name, "labels": namespace_labels()},
                                          opts=child)
        in_ns = pulumi.ResourceOptions(parent=self, depends_on=[namespace])
        self._rbac(ns_name, models_namespaces, in_ns)
        k8s.core.v1.ConfigMap(f"{name}-config", metadata=self._meta("router-config", ns_name),
                              data={CONFIG_FILE: config_json}, opts=in_ns)
        self._app_insights = app_insights_connection_string is not None
        if self._app_insights:
            app_insights.connection_secret(f"{name}-app-insights", ns_name, app_insights_connection_string,
                                           labels("app-insights", "router"), in_ns)
        volumes, mounts = self._volumes(ns_name, token_public_key, in_ns)
        production = cfg.cluster.purpose == "production"
        self._deployment(ns_name, image, config_json, volumes, mounts, production, in_ns)
        service = self._services(ns_name, in_ns)
        k8s.policy.v1.PodDisruptionBudget(
            f"{name}-pdb", metadata=self._meta(NAME, ns_name),
            spec={"maxUnavailable": 1, "selector": {"matchLabels": selector(NAME, "router")}}, opts=in_ns)
        if production:
            self._autoscaler(ns_name, in_ns)
        self._network_policy(ns_name, in_ns)

        self.namespace = namespace.metadata.apply(lambda m: m.name)
        self.scheme = "https" if cfg.router.tls.mode != "off" else "http"
        self.address = service.status.apply(_ingress_address)
        tls = cfg.router.tls
        if tls.mode == "custom":
            self.host = pulumi.Output.from_input(tls.cname)
        elif tls.mode == "auto":
            self.host = pulumi.Output.from_input(self.dns_name)
        else:
            self.host = self.address
        self.register_outputs({"namespace": self.namespace, "address": self.address, "host": self.host})

    def _meta(self, name: str, namespace: str, **extra) -> dict:
        return {"name": name, "namespace": namespace, "labels": labels(NAME, "router"), **extra}

    # ---- permissions -------------------------------------------------------------------------

    def _rbac(self, ns_name: str, models_namespaces: dict[str, k8s.core.v1.Namespace], opts) -> None:
        account = k8s.core.v1.ServiceAccount(f"{self._name}-account", metadata=self._meta(NAME, ns_name), opts=opts)
        subject = [{"kind": "ServiceAccount", "name": NAME, "namespace": ns_name}]
        own_rules = [
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "create", "update"]},
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["list", "watch"]},
            {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]},
        ]
        model_rules = [
            {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]},
            {"apiGroups": ["apps"], "resources": ["deployments/scale"], "verbs": ["get", "patch"]},
        ]
        grants = [(f"{self._name}-role", ns_name, own_rules, [])]
        grants += [(f"{self._name}-role-{models}", models, model_rules, [ns]) for models, ns in models_namespaces.items()]
        for resource_name, target, rules, after in grants:
            deps = pulumi.ResourceOptions(depends_on=[account, *after])
            role = k8s.rbac.v1.Role(resource_name, metadata=self._meta(NAME, target), rules=rules, opts=opts.merge(deps))
            k8s.rbac.v1.RoleBinding(
                f"{resource_name}-binding", metadata=self._meta(NAME, target), subjects=subject,
                role_ref={"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": NAME},
                opts=opts.merge(pulumi.ResourceOptions(depends_on=[role])))

    # ---- pods --------------------------------------------------------------------------------

    def _volumes(self, ns_name: str, token_public_key, opts) -> tuple[list, list]:
        volumes = [{"name": "config", "configMap": {"name": "router-config"}}, tmp_volume()]
        mounts = [{"name": "config", "mountPath": CONFIG_DIR, "readOnly": True}, {"name": "tmp", "mountPath": "/tmp"}]
        if uses_token_auth(self._cfg):
            # Only the public half: the router verifies tokens, it never mints them.
            k8s.core.v1.ConfigMap(f"{self._name}-token-keys", metadata=self._meta("router-token-keys", ns_name),
                                  data={"public.pem": token_public_key}, opts=opts)
            volumes.append({"name": "token-keys", "configMap": {"name": "router-token-keys"}})
            mounts.append({"name": "token-keys", "mountPath": TOKEN_DIR, "readOnly": True})
        if self._cfg.router.tls.mode == "custom":
            tls = self._cfg.router.tls
            k8s.core.v1.Secret(f"{self._name}-tls", metadata=self._meta("router-tls", ns_name),
                               type="kubernetes.io/tls",
                               string_data={"tls.crt": tls.cert, "tls.key": pulumi.Output.secret(tls.key)}, opts=opts)
        mode = self._cfg.router.tls.mode
        if mode == "auto":
            AutoTls(f"{self._name}-tls", namespace=ns_name, dns_name=self.dns_name, secret_name="router-tls",
                    acme_server=self._cfg.router.tls.acme_server, opts=opts.merge(pulumi.ResourceOptions(parent=self)))
        if mode != "off":
            # An ACME certificate exists only after the router has answered its challenge, so the pod must
            # start without it (the kubelet fills the volume in once cert-manager writes the Secret).
            secret = {"secretName": "router-tls", **({"optional": True} if mode == "auto" else {})}
            volumes.append({"name": "tls", "secret": secret})
            mounts.append({"name": "tls", "mountPath": TLS_DIR, "readOnly": True})
        return volumes, mounts

    def _deployment(self, ns_name, image, config_json: str, volumes, mounts, production: bool, opts) -> None:
        grace = shutdown_grace_seconds(self._cfg)
        field = lambda path: {"valueFrom": {"fieldRef": {"fieldPath": path}}}  # noqa: E731
        container = {
            "name": NAME, "image": image,
            "args": ["--config", f"{CONFIG_DIR}/{CONFIG_FILE}", "--host", "0.0.0.0", "--port", str(HTTP_PORT),
                     "--admin-host", "0.0.0.0", "--admin-port", str(ADMIN_PORT)],
            "ports": [{"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"},
                      {"name": "admin", "containerPort": ADMIN_PORT, "protocol": "TCP"}]
                     + ([{"name": "https", "containerPort": HTTPS_PORT, "protocol": "TCP"}]
                        if self._cfg.router.tls.mode != "off" else [])
                     + ([{"name": "acme", "containerPort": ACME_PORT, "protocol": "TCP"}]
                        if self._cfg.router.tls.mode == "auto" else []),
            "env": [{"name": "POD_NAME", **field("metadata.name")}, {"name": "POD_IP", **field("status.podIP")}]
                   + (app_insights.router_env() if self._app_insights else []),
            "resources": resources(0.5, 0.25, cpu_limit=2, memory_gb_limit=0.5),
            "securityContext": container_security(),
            "volumeMounts": mounts,
            "livenessProbe": {"httpGet": {"path": "/healthz", "port": "admin"}, "periodSeconds": 10,
                              "timeoutSeconds": 2, "failureThreshold": 3},
            "readinessProbe": {"httpGet": {"path": "/readyz", "port": "admin"}, "periodSeconds": 2,
                               "timeoutSeconds": 2, "failureThreshold": 2},
            "lifecycle": {"preStop": {"sleep": {"seconds": PRE_STOP_SECONDS}}},
        }
        match = selector(NAME, "router")
        spec = {
            "selector": {"matchLabels": match},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                # A changed config rolls the pods (keys do not: they are watched through the API).
                "metadata": {"labels": labels(NAME, "router"),
                             "annotations": {"aks-serving/config-sha256": hashlib.sha256(config_json.encode()).hexdigest()}},
                "spec": {
                    "serviceAccountName": NAME,
                    "securityContext": pod_security(UID),
                    "terminationGracePeriodSeconds": PRE_STOP_SECONDS + grace + 5,
                    "containers": [container],
                    "volumes": volumes,
                    "topologySpreadConstraints": [
                        {"maxSkew": 1, "topologyKey": key, "whenUnsatisfiable": "ScheduleAnyway",
                         "labelSelector": {"matchLabels": match}}
                        for key in ("topology.kubernetes.io/zone", "kubernetes.io/hostname")],
                },
            },
        }
        replicas = self._cfg.router.replicas or 1
        if not production and replicas > 1:
            spec["replicas"] = replicas  # dev-test has no router HPA, so the count is the config's
        k8s.apps.v1.Deployment(f"{self._name}-deployment", metadata=self._meta(NAME, ns_name), spec=spec, opts=opts)

    def _autoscaler(self, ns_name: str, opts) -> None:
        low = self._cfg.router.replicas or 2
        high = self._cfg.router.max_replicas or max(low, 6)
        k8s.autoscaling.v2.HorizontalPodAutoscaler(
            f"{self._name}-hpa", metadata=self._meta(NAME, ns_name),
            spec={"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": NAME},
                  "minReplicas": low, "maxReplicas": high,
                  "metrics": [{"type": "Resource", "resource": {
                      "name": "cpu", "target": {"type": "Utilization", "averageUtilization": CPU_TARGET_PERCENT}}}]},
            opts=opts)

    # ---- network -----------------------------------------------------------------------------

    def _services(self, ns_name: str, opts) -> k8s.core.v1.Service:
        lb, tls = self._cfg.router.load_balancer, self._cfg.router.tls
        annotations = {}
        if lb.type == "internal":
            annotations["service.beta.kubernetes.io/azure-load-balancer-internal"] = "true"
            if lb.subnet:
                annotations["service.beta.kubernetes.io/azure-load-balancer-internal-subnet"] = lb.subnet
        if tls.mode == "auto":
            # Azure gives the public IP the name <label>.<region>.cloudapp.azure.com (v1's leaf domain label).
            annotations["service.beta.kubernetes.io/azure-dns-label-name"] = tls.leaf_domain_label
        ports = []
        if tls.mode != "off":
            ports.append({"name": "https", "port": 443, "targetPort": "https", "protocol": "TCP"})
        if tls.mode == "off":
            ports.append({"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"})
        elif tls.mode == "auto":  # the CA's HTTP-01 challenge comes on 80; everything else is sent to 443
            ports.append({"name": "http", "port": 80, "targetPort": "acme", "protocol": "TCP"})
        service = k8s.core.v1.Service(
            f"{self._name}-service", metadata=self._meta(NAME, ns_name, annotations=annotations),
            spec={"type": "LoadBalancer", "selector": selector(NAME, "router"), "ports": ports},
            opts=opts)
        # Peers count each other from the moment they start, so they split replica slots the same way.
        k8s.core.v1.Service(
            f"{self._name}-peers", metadata=self._meta(PEER_SERVICE, ns_name),
            spec={"clusterIP": "None", "publishNotReadyAddresses": True, "selector": selector(NAME, "router"),
                  "ports": [{"name": "admin", "port": ADMIN_PORT, "targetPort": "admin", "protocol": "TCP"}]},
            opts=opts)
        return service

    def _network_policy(self, ns_name: str, opts) -> None:
        router_pods = {"matchLabels": selector(NAME, "router")}
        k8s.networking.v1.NetworkPolicy(
            f"{self._name}-ingress", metadata=self._meta(NAME, ns_name),
            spec={"podSelector": router_pods, "policyTypes": ["Ingress"],
                  "ingress": [
                      # clients, through the load balancer
                      {"ports": [{"port": port, "protocol": "TCP"} for port in (HTTP_PORT, HTTPS_PORT, ACME_PORT)]},
                      {"from": [{"podSelector": router_pods}],  # the admin port: peers only
                       "ports": [{"port": ADMIN_PORT, "protocol": "TCP"}]},
                  ]},
            opts=opts)
        if self._cfg.router.tls.mode == "auto":
            k8s.networking.v1.NetworkPolicy(  # the router forwards ACME challenges to cert-manager's solver
                f"{self._name}-acme-solver", metadata=self._meta("acme-solver", ns_name),
                spec={"podSelector": {"matchLabels": {SOLVER_LABEL: "true"}}, "policyTypes": ["Ingress"],
                      "ingress": [{"from": [{"podSelector": router_pods}],
                                   "ports": [{"port": SOLVER_PORT, "protocol": "TCP"}]}]},
                opts=opts)
        k8s.networking.v1.NetworkPolicy(
            f"{self._name}-default-deny", metadata=self._meta("default-deny", ns_name),
            spec={"podSelector": {}, "policyTypes": ["Ingress"]}, opts=opts)


def _ingress_address(status) -> Optional[str]:
    ingress = (status.load_balancer.ingress if status and status.load_balancer else None) or []
    return (ingress[0].ip or ingress[0].hostname) if ingress else None

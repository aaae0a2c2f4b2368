"""`router:` the request router's deployment: namespaces, replicas, limits, load balancer, TLS."""
from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field, model_validator

from components.config_base import ConfigModel as _Model
from components.config_base import check_named as _named
from policies.rules import naming
from router.settings import HttpLimits


class LoadBalancer(_Model):
    type: Literal["public", "internal"] = "public"
    subnet: Optional[str] = None

    @model_validator(mode="after")
    def _rules(self) -> "LoadBalancer":
        if self.subnet and self.type != "internal":
            raise ValueError("subnet: a load balancer subnet is only for type internal")
        return self


LETS_ENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"


class Tls(_Model):
    """TLS on the router: off, auto (an Azure DNS label and an ACME certificate) or a custom certificate."""

    mode: Literal["off", "auto", "custom"] = "off"
    leaf_domain_label: Optional[str] = None
    # auto: the ACME directory (Let's Encrypt's staging one suits stacks that are torn down often: its rate
    # limits are far higher, but browsers do not trust what it issues).
    acme_server: str = LETS_ENCRYPT
    cname: Optional[str] = None
    cert: Optional[str] = None
    key: Optional[str] = None  # secret: `pulumi config set --secret --path router.tls.key ...`

    @model_validator(mode="after")
    def _no_key_in_cert(self) -> "Tls":
        # The cert is a plain stack value: a PEM bundle pasted whole would leave the key in the stack file in clear text.
        if self.cert and "PRIVATE KEY-----" in self.cert:
            raise ValueError("cert: holds a private key (a PEM of the certificate and its key together); give the "
                             "certificate alone and set the key with `pulumi config set --secret --path "
                             "router.tls.key ...`")
        return self


class Router(_Model):
    """The request router's deployment; unset replicas: 1 on dev-test, 2 (and a CPU autoscaler) on production."""

    namespace: str = "aks-serving"
    # Where model Deployments run unless a service names its own namespace; kept apart from the router's
    # so a default-deny NetworkPolicy can fence the models in.
    models_namespace: str = "aks-serving-models"
    replicas: Optional[int] = Field(None, gt=0)
    max_replicas: Optional[int] = Field(None, gt=0)
    max_request_body_mb: int = Field(100, gt=0)
    # What one client may take of the router (head size, body and send timeouts...): the router's own
    # schema, so the stack file and the router agree on every key and rule.
    limits: HttpLimits = HttpLimits()
    load_balancer: LoadBalancer = LoadBalancer()
    tls: Tls = Tls()

    @model_validator(mode="after")
    def _rules(self) -> "Router":
        _named("namespace", naming.check_namespace, self.namespace)
        _named("modelsNamespace", naming.check_namespace, self.models_namespace)
        if self.models_namespace == self.namespace:
            raise ValueError("modelsNamespace: must differ from namespace (the models are fenced off from the router's "
                             "namespace by NetworkPolicies)")
        if self.replicas and self.max_replicas and self.max_replicas < self.replicas:
            raise ValueError(f"maxReplicas: must be >= replicas ({self.replicas})")
        return self

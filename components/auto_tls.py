"""`router.tls.mode: auto`: a public certificate for the router's Azure DNS name, as v1's Microsoft one was.

Azure names the router's public IP `<label>.<region>.cloudapp.azure.com` (the Service's DNS label
annotation). cert-manager (its Helm chart) gets a certificate for that name from an ACME CA (Let's Encrypt)
with the HTTP-01 challenge and keeps renewing it into the `router-tls` Secret the router serves.
There is no ingress controller: cert-manager's solver pods are labelled `acme.cert-manager.io/http01-solver`,
and the router answers `/.well-known/acme-challenge/` on port 80 by forwarding to them (its Role already
lets it watch EndpointSlices in its own namespace). The Issuer is namespaced: nothing cluster-wide beyond
cert-manager itself.
"""
from __future__ import annotations

from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

CERT_MANAGER_CHART_VERSION = "v1.19.1"
ACME_SERVER = "https://acme-v02.api.letsencrypt.org/directory"
SOLVER_LABEL = "acme.cert-manager.io/http01-solver"
SOLVER_PORT = 8089  # cert-manager's solver pods listen here
ISSUER = "router-acme"


class AutoTls(pulumi.ComponentResource):
    secret_name: str

    def __init__(self, name: str, *, namespace: pulumi.Input[str], dns_name: str, secret_name: str,
                 opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("aks-serving:index:AutoTls", name, None, opts)
        self.secret_name = secret_name
        chart = k8s.helm.v3.Release(
            f"{name}-cert-manager", name="cert-manager", chart="cert-manager", version=CERT_MANAGER_CHART_VERSION,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo="https://charts.jetstack.io"),
            namespace="cert-manager", create_namespace=True,
            values={"crds": {"enabled": True, "keep": True}, "global": {"leaderElection": {"namespace": "cert-manager"}}},
            opts=pulumi.ResourceOptions(parent=self))
        after_chart = pulumi.ResourceOptions(parent=self, depends_on=[chart])
        issuer = k8s.apiextensions.CustomResource(
            f"{name}-issuer", api_version="cert-manager.io/v1", kind="Issuer",
            metadata={"name": ISSUER, "namespace": namespace},
            spec={"acme": {"server": ACME_SERVER, "privateKeySecretRef": {"name": f"{ISSUER}-account"},
                           # The Ingress cert-manager creates is never served by a controller; the router
                           # forwards the challenge path to the solver pods itself.
                           "solvers": [{"http01": {"ingress": {"ingressClassName": "aks-serving-router"}}}]}},
            opts=after_chart)
        k8s.apiextensions.CustomResource(
            f"{name}-certificate", api_version="cert-manager.io/v1", kind="Certificate",
            metadata={"name": secret_name, "namespace": namespace},
            spec={"secretName": secret_name, "dnsNames": [dns_name],
                  "issuerRef": {"name": ISSUER, "kind": "Issuer", "group": "cert-manager.io"},
                  "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"}},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[chart, issuer]))
        self.register_outputs({"dnsName": dns_name})

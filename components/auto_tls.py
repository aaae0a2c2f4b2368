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

from components.pinned_image import digest

CERT_MANAGER_CHART_VERSION = "v1.19.1"
# The chart's values key of each image it runs, and the image (tagged with the chart's version).
CERT_MANAGER_IMAGES = {"image": "cert-manager-controller", "webhook": "cert-manager-webhook",
                       "cainjector": "cert-manager-cainjector", "acmesolver": "cert-manager-acmesolver",
                       "startupapicheck": "cert-manager-startupapicheck"}
SOLVER_LABEL = "acme.cert-manager.io/http01-solver"
SOLVER_PORT = 8089  # cert-manager's solver pods listen here
ISSUER = "router-acme"


class AutoTls(pulumi.ComponentResource):
    secret_name: str

    def __init__(self, name: str, *, namespace: pulumi.Input[str], dns_name: str, secret_name: str, acme_server: str,
                 opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("aks-serving:index:AutoTls", name, None, opts)
        self.secret_name = secret_name
        chart = k8s.helm.v3.Release(
            f"{name}-cert-manager", name="cert-manager", chart="cert-manager", version=CERT_MANAGER_CHART_VERSION,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo="https://charts.jetstack.io"),
            namespace="cert-manager", create_namespace=True,
            values={"crds": {"enabled": True, "keep": True}, "global": {"leaderElection": {"namespace": "cert-manager"}},
                    **pinned_images()},
            opts=pulumi.ResourceOptions(parent=self))
        after_chart = pulumi.ResourceOptions(parent=self, depends_on=[chart])
        issuer = k8s.apiextensions.CustomResource(
            f"{name}-issuer", api_version="cert-manager.io/v1", kind="Issuer",
            metadata={"name": ISSUER, "namespace": namespace},
            spec={"acme": {"server": acme_server, "privateKeySecretRef": {"name": f"{ISSUER}-account"},
                           # The Ingress cert-manager creates is never served by a controller (no class of
                           # that name exists); the router forwards the challenge path to the solver pods
                           # itself. A ClusterIP Service, as the router reaches the pods directly.
                           "solvers": [{"http01": {"ingress": {"ingressClassName": "aks-serving-router",
                                                               "serviceType": "ClusterIP"}}}]}},
            opts=after_chart)
        k8s.apiextensions.CustomResource(
            f"{name}-certificate", api_version="cert-manager.io/v1", kind="Certificate",
            metadata={"name": secret_name, "namespace": namespace},
            spec={"secretName": secret_name, "dnsNames": [dns_name],
                  "issuerRef": {"name": ISSUER, "kind": "Issuer", "group": "cert-manager.io"},
                  "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"}},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[chart, issuer]))
        self.register_outputs({"dnsName": dns_name})


def pinned_images() -> dict:
    """Chart values that run every cert-manager image by digest, as the rest of the stack does."""
    def image(key: str) -> dict:
        return {"digest": digest(f"quay.io/jetstack/{CERT_MANAGER_IMAGES[key]}:{CERT_MANAGER_CHART_VERSION}")}
    # The controller's image is the chart's top-level `image`; the others sit under their component.
    return {"image": image("image"), **{key: {"image": image(key)} for key in CERT_MANAGER_IMAGES if key != "image"}}

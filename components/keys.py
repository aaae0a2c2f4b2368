"""Scoring keys (v1's primary and secondary keys) and the signing key of token-auth services.

Keys live in Secrets in the router's namespace (a pod cannot mount another namespace's Secret), labelled
so the router finds them through the API and picks up a rotated key or a new service without a restart.
Each key is a pulumi-random password whose `keepers` hold its version: bumping `keys.primaryVersion`
regenerates the primary only, while the secondary keeps working (v1's regen_key), so clients move over
with no failed request.
"""
from __future__ import annotations

from typing import Optional

import pulumi
import pulumi_random as random
import pulumi_tls as tls

from components.config import Keys
from components.kube_object import kube_object
from components.workload import labels

KEYS_FOR_LABEL = "aks-serving/keys-for"  # the router's keySecretLabels select on this
KEY_LENGTH = 32  # 190 bits from [A-Za-z0-9]


def key_secret_labels(owner: str) -> dict[str, str]:
    return {KEYS_FOR_LABEL: owner}


class ServiceKeys(pulumi.ComponentResource):
    """A service's (or endpoint's) primary and secondary key, as a labelled Secret the router watches."""

    primary_key: pulumi.Output[str]  # secret
    secondary_key: pulumi.Output[str]  # secret

    def __init__(self, name: str, owner: str, keys: Keys, namespace: pulumi.Input[str],
                 opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("aks-serving:index:ServiceKeys", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.primary_key = _key(f"{name}-primary", keys.primary_version, child)
        self.secondary_key = _key(f"{name}-secondary", keys.secondary_version, child)
        kube_object(
            f"{name}-secret", "v1", "Secret", {
                "metadata": {"name": f"{owner}-keys", "namespace": namespace,
                             "labels": {**labels(owner, "keys"), **key_secret_labels(owner)}},
                "type": "Opaque", "stringData": {"primaryKey": self.primary_key, "secondaryKey": self.secondary_key}},
            parent=self)
        self.register_outputs({"primaryKey": self.primary_key, "secondaryKey": self.secondary_key})


def _key(name: str, version: int, opts: pulumi.ResourceOptions) -> pulumi.Output[str]:
    """A key that changes only when `version` does. The engine stores `result` as a secret (the SDK asks it
    to); marking it here as well keeps every Output made from it (the Secret, the `keys` export) secret."""
    password = random.RandomPassword(name, length=KEY_LENGTH, special=False, keepers={"version": str(version)},
                                     opts=opts)
    return pulumi.Output.secret(password.result)


class TokenSigningKey(pulumi.ComponentResource):
    """The stack's RSA key for token-auth services: the router gets the public half only."""

    private_key_pem: pulumi.Output[str]  # secret: mints tokens (`python -m router token`)
    public_key_pem: pulumi.Output[str]

    def __init__(self, name: str, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("aks-serving:index:TokenSigningKey", name, None, opts)
        key = tls.PrivateKey(f"{name}-rsa", algorithm="RSA", rsa_bits=3072, opts=pulumi.ResourceOptions(parent=self))
        self.private_key_pem = pulumi.Output.secret(key.private_key_pem)
        self.public_key_pem = key.public_key_pem
        self.register_outputs({"publicKeyPem": self.public_key_pem})

"""Scoring keys (v1's primary and secondary keys) and the signing key of token-auth services.

Keys live in Secrets in the router's namespace (a pod cannot mount another namespace's Secret), labelled
so the router finds them through the API and picks up a rotated key or a new service without a restart.
Each key is a pulumi-random password whose `keepers` hold its version: bumping `keys.primaryVersion`
regenerates the primary only, while the secondary keeps working (v1's regen_key), so clients move over
with no failed request. A key given in the stack config (`keys.primaryKey`, a Pulumi secret) is used
instead, as v1 accepted users' own keys.
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
        self.primary_key = _key(f"{name}-primary", keys.primary_version, keys.primary_key, child)
        self.secondary_key = _key(f"{name}-secondary", keys.secondary_version, keys.secondary_key, child)
        kube_object(
            f"{name}-secret", "v1", "Secret", {
                "metadata": {"name": f"{owner}-keys", "namespace": namespace,
                             "labels": {**labels(owner, "keys"), **key_secret_labels(owner)}},
                "type": "Opaque", "stringData": {"primaryKey": self.primary_key, "secondaryKey": self.secondary_key}},
            parent=self)
        self.register_outputs({"primaryKey": self.primary_key, "secondaryKey": self.secondary_key})


def _key(name: str, version: int, own: Optional[str], opts: pulumi.ResourceOptions) -> pulumi.Output[str]:
    """The user's own key when the stack config has one (v1 accepted them; `python -m aks_serving regen-key`
    tells you to record the key it made there), else a key that changes only when `version` does.
    `pulumi.Config().get_object` hands the config's secret back as a plain str, and the engine stores
    `result` as a secret: marking both here keeps every Output made from them (the Secret, the `keys`
    export) secret."""
    if own is not None:
        return pulumi.Output.secret(own)
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

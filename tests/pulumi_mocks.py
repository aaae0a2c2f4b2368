"""Run the Pulumi program under Pulumi's mocks and record what it registers.

The SDK objects, argument checks and output plumbing are real; the engine and Azure are not (neither
can run here). Azure stands in as canned answers to the invokes the program makes, below.
"""
from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import runpy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import pulumi
import yaml
from google.protobuf import struct_pb2
from pulumi.runtime import mocks, rpc, settings
from pulumi.runtime.proto import resource_pb2
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _ensure_event_loop, _sync_await

ROOT = Path(__file__).resolve().parents[1]
SUBSCRIPTION = "8f3c1a2e-5b7d-4c9e-a1f0-2d6b8e4c7a93"
TENANT = "c0ffee00-1111-4222-8333-444455556666"
SERVER_ID = "6dae42f8-4368-4678-94ff-3960e28e3630"  # AKS's Entra server app id, the same in every tenant

# What `listClusterUserCredential(format=exec)` returns for an Entra ID cluster.
EXEC_KUBECONFIG = {
    "apiVersion": "v1", "kind": "Config", "current-context": "aks",
    "clusters": [{"name": "aks", "cluster": {"server": "https://aks-dns.hcp.westeurope.azmk8s.io:443",
                                             "certificate-authority-data": "Y2VydA=="}}],
    "contexts": [{"name": "aks", "context": {"cluster": "aks", "user": "clusterUser_rg_aks"}}],
    "users": [{"name": "clusterUser_rg_aks", "user": {"exec": {
        "apiVersion": "client.authentication.k8s.io/v1beta1", "command": "kubelogin",
        "args": ["get-token", "--environment", "AzurePublicCloud", "--server-id", SERVER_ID,
                 "--client-id", "80faf920-1908-4b52-b5ef-a8e7bedfc67a", "--tenant-id", TENANT,
                 "--login", "devicecode"]}}}],
}


@dataclass
class Registered:
    type: str
    name: str
    inputs: dict
    parent: str = ""
    ignore_changes: list[str] = field(default_factory=list)
    # Outputs the SDK declares secret (a generated password or key): the engine stores them marked,
    # the mock's state holds them plain, so whoever writes a record out must redact them.
    secret_outputs: list[str] = field(default_factory=list)
    depends_on: list[str] = field(default_factory=list)  # names of the resources it waits for
    retain_on_delete: bool = False  # `pulumi destroy` (or dropping it from the program) leaves it in Azure
    deleted_with: str = ""  # name of the resource whose deletion takes this one along (its own delete is skipped)
    delete_before_replace: Optional[bool] = None  # None: the provider decides


@dataclass
class Run:
    resources: list[Registered]
    invokes: list[tuple[str, dict]]
    exports: dict[str, Any]
    secret_exports: set[str]
    warnings: list[str]

    def of_type(self, type_: str) -> list[Registered]:
        return [r for r in self.resources if r.type == type_]

    def named(self, name: str) -> Registered:
        found = [r for r in self.resources if r.name == name]
        assert len(found) == 1, f"expected one resource named {name}, got {len(found)}"
        return found[0]

    def one(self, type_: str) -> Registered:
        found = self.of_type(type_)
        assert len(found) == 1, f"expected one {type_}, got {[r.name for r in found]}"
        return found[0]


# Public images the program pins by digest at deploy time, as their registries would answer.
PUBLIC_IMAGES = {"nvcr.io/nvidia/k8s-device-plugin:v0.17.4": "sha256:" + "7d" * 32,
                 **{f"quay.io/jetstack/cert-manager-{name}:v1.19.1": "sha256:" + f"{i:x}e" * 32
                    for i, name in enumerate(("controller", "webhook", "cainjector", "acmesolver", "startupapicheck"))}}


class AzureStandIn(mocks.Mocks):
    """Canned Azure answers: outputs echo the inputs plus what Azure would compute."""

    def __init__(self, attached_cluster: Optional[dict] = None, registry_digests: Optional[dict] = None):
        self.attached_cluster = attached_cluster
        # `<registry>/<repository>:<tag>` -> "sha256:..." the stand-in registries hold (public images by default).
        self.registry_digests = {**PUBLIC_IMAGES, **(registry_digests or {})}
        self.token_exchanges: list[str] = []  # registries a refresh token was asked for (provider side)
        self.lookups: list[str] = []  # `<registry>/<repository>:<tag>` looked up through the registry API
        self.builds: list[tuple[str, str, bytes]] = []  # (builder, image, context tarball) built and pushed
        self.version_requests: list[tuple[str, str, str]] = []
        self.created: list[Registered] = []
        self.invokes: list[tuple[str, dict]] = []

    def new_resource(self, args: mocks.MockResourceArgs):
        outputs = dict(args.inputs)
        outputs.update(self._computed(args.typ, args.inputs))
        if args.typ == REGISTRY_IMAGE and not pulumi.runtime.is_dry_run():  # `pulumi up` runs the provider's create
            from components import registry_image
            outputs.update(registry_image.resolve(dict(args.inputs)))
        if args.typ == "azure-native:managedidentity:UserAssignedIdentity":  # each identity its own IDs
            prefix = args.name.removesuffix("-identity")
            outputs.update(name=args.name, clientId=f"{prefix}-client-id", principalId=f"{prefix}-principal-id")
        if args.typ == "random:index/randomPassword:RandomPassword":  # one per name and keepers, like a real one
            seed = args.name + json.dumps(args.inputs.get("keepers", {}), sort_keys=True)
            outputs["result"] = hashlib.sha256(seed.encode()).hexdigest()[:int(args.inputs["length"])]
        return f"/subscriptions/{SUBSCRIPTION}/mock/{args.name}", outputs

    @staticmethod
    def _computed(typ: str, inputs: dict) -> dict:
        if typ == "azure-native:containerservice:ManagedCluster":
            identity = dict(inputs.get("identity") or {})
            if isinstance(identity.get("userAssignedIdentities"), list):  # ARM answers with a map by identity ID
                identity["userAssignedIdentities"] = {i: {"principalId": "control-plane-principal",
                                                          "clientId": "control-plane-client"}
                                                      for i in identity["userAssignedIdentities"]}
            return {"name": inputs["resourceName"], **({"identity": identity} if identity else {}),
                    "identityProfile": inputs.get("identityProfile") or
                    {"kubeletidentity": {"objectId": "kubelet-object-id", "clientId": "kubelet-client"}},
                    "oidcIssuerProfile": {"enabled": True, "issuerURL": "https://oidc.example/issuer/"}}
        if typ == "azure-native:containerregistry:Registry":
            return {"name": inputs["registryName"], "loginServer": f"{inputs['registryName']}.azurecr.io"}
        if typ == "azure-native:storage:StorageAccount":
            return {"name": inputs["accountName"],
                    "primaryEndpoints": {"blob": f"https://{inputs['accountName']}.blob.core.windows.net/"}}
        if typ == "azure-native:managedidentity:UserAssignedIdentity":
            return {"tenantId": TENANT}  # names and IDs per identity: new_resource
        if typ == "azure-native:storage:BlobContainer":
            return {"name": inputs["containerName"]}
        if typ == "azure-native:resources:ResourceGroup":
            return {"name": inputs["resourceGroupName"]}
        if typ == "random:index/randomString:RandomString":
            return {"result": "q7x2k9"}
        if typ == "tls:index/privateKey:PrivateKey":
            return {"privateKeyPem": "-----BEGIN PRIVATE KEY-----\nstand-in\n-----END PRIVATE KEY-----\n",
                    "publicKeyPem": "-----BEGIN PUBLIC KEY-----\nstand-in\n-----END PUBLIC KEY-----\n"}
        if typ == "kubernetes:core/v1:Service" and inputs.get("spec", {}).get("type") == "LoadBalancer":
            return {"status": {"loadBalancer": {"ingress": [{"ip": "20.31.42.53"}]}}}
        if typ == "azure-native:applicationinsights:Component":
            return {"connectionString": "InstrumentationKey=00000000-0000-0000-0000-000000000000"}
        return {}

    def kubernetes_versions(self, subscription: str, location: str, token: str) -> list[dict]:
        """ARM's kubernetesVersions list for a region (HTTPS to ARM) answered here, as AKS offered it late 2026."""
        self.version_requests.append((subscription, location, token))
        return [{"version": minor, "isPreview": preview, "patchVersions": {f"{minor}.{p}": {} for p in range(3)}}
                for minor, preview in (("1.32", False), ("1.33", False), ("1.34", False), ("1.35", True))]

    # The RegistryImage provider's network calls (Entra + /oauth2/exchange, the registry's manifest API, an
    # ACR Tasks run or a local docker build) are answered here by patching its module functions.
    def refresh_token(self, login_server: str) -> str:
        self.token_exchanges.append(login_server)
        return f"acr-refresh-token-for-{login_server}"

    def lookup(self, server: str, repository: str, tag: str, token: Optional[str] = None) -> Optional[str]:
        assert token == f"acr-refresh-token-for-{server}", "each registry is asked with its own token"
        self.lookups.append(f"{server}/{repository}:{tag}")
        return self.registry_digests.get(f"{server}/{repository}:{tag}")

    def public_digest(self, reference: str) -> str:
        return self.registry_digests[reference]

    def builder(self, name: str):
        def build(props: dict, context: bytes, _token: str) -> None:
            image = f"{props['server']}/{props['repository']}:{props['tag']}"
            self.builds.append((name, image, context))
            self.registry_digests[image] = "sha256:" + hashlib.sha256(image.encode()).hexdigest()
        return build

    def call(self, args: mocks.MockCallArgs):
        self.invokes.append((args.token, dict(args.args)))
        if args.token == "azure-native:authorization:getClientConfig":
            return {"subscriptionId": SUBSCRIPTION, "tenantId": TENANT, "clientId": "deployer", "objectId": "deployer-oid"}, []
        if args.token == "azure-native:containerservice:listManagedClusterUserCredentials":
            kubeconfig = yaml.safe_dump(EXEC_KUBECONFIG).encode()
            return {"kubeconfigs": [{"name": "clusterUser", "value": base64.b64encode(kubeconfig).decode()}]}, []
        if args.token == "azure-native:containerservice:getManagedCluster":
            if self.attached_cluster is None or args.args.get("resourceName") != self.attached_cluster["name"]:
                return {}, [("resourceName", "ResourceNotFound: the managed cluster was not found")]
            return self.attached_cluster, []
        if args.token == "azure-native:authorization:getClientToken":
            return {"token": "entra-access-token"}, []
        raise NotImplementedError(f"no stand-in for invoke {args.token}")


REGISTRY_IMAGE = "pulumi-python:dynamic/aks-serving:RegistryImage"


@contextlib.contextmanager
def registries_stood_in(stand_in: AzureStandIn):
    """Registry and build calls (HTTPS to registries, ARM and Entra, or a docker daemon) answered by `stand_in`."""
    from components import pinned_image, registry_image
    saved = (registry_image.refresh_token, registry_image.lookup, registry_image.BUILDERS, pinned_image.lookup_public)
    registry_image.refresh_token, registry_image.lookup = stand_in.refresh_token, stand_in.lookup
    registry_image.BUILDERS = {name: stand_in.builder(name) for name in registry_image.BUILDERS}
    pinned_image.lookup_public = stand_in.public_digest
    try:
        yield stand_in
    finally:
        (registry_image.refresh_token, registry_image.lookup, registry_image.BUILDERS,
         pinned_image.lookup_public) = saved


class RecordingMonitor(mocks.MockMonitor):
    """The engine's stand-in. It records what only the raw registration carries (the parent, ignoreChanges,
    additionalSecretOutputs, the dependencies and the delete options), and it answers as the engine does: with the inputs as the
    program sent them, plus what the stand-in computed. The SDK's MockMonitor instead serializes the whole
    state again in the program's process, work the real engine does in its own; that would charge every
    byte of a Deployment twice to the program (bench/program_cost.py)."""

    def RegisterResource(self, request):
        if request.type == "pulumi:pulumi:Stack":
            return super().RegisterResource(request)
        urn = self.make_urn(request.parent, request.type, request.name)
        _ensure_event_loop()  # resource references among the inputs are read back on this thread's loop
        inputs = rpc.deserialize_properties(request.object)
        id_, state = self.mocks.new_resource(mocks.MockResourceArgs(
            typ=request.type, name=request.name, inputs=inputs, provider=request.provider,
            resource_id=request.importId, custom=request.custom or False,
            transforms=mocks._resolve_callbacks(request.transforms)))
        self.resources[urn] = mocks.MockMonitor.ResourceRegistration(urn, id_, state)
        self.mocks.created.append(Registered(
            request.type, request.name, dict(state) if request.custom else {},
            request.parent, list(request.ignoreChanges), list(request.additionalSecretOutputs),
            sorted({dependency.rsplit("::", 1)[-1] for dependency in request.dependencies}),
            bool(request.retainOnDelete), request.deletedWith.rsplit("::", 1)[-1],
            request.deleteBeforeReplace if request.deleteBeforeReplaceDefined else None))
        return resource_pb2.RegisterResourceResponse(urn=urn, id=id_,
                                                     object=_outputs(request.object, inputs, state))


def _outputs(sent: struct_pb2.Struct, inputs: dict, state: dict) -> struct_pb2.Struct:
    """`state` on the wire: the fields the stand-in kept from the inputs as they were sent, the rest
    (what it computed or replaced) serialized here."""
    computed = {k: v for k, v in state.items() if k not in inputs or inputs[k] is not v}
    dropped = inputs.keys() - state.keys()
    if not computed and not dropped:
        return sent
    outputs = struct_pb2.Struct()
    outputs.CopyFrom(sent)
    for key in dropped:
        del outputs.fields[key]
    if computed:
        extra = _sync_await(rpc.serialize_properties(computed, {}))
        for key, value in extra.fields.items():
            outputs.fields[key].CopyFrom(value)
    return outputs


class _Capture(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def stack_file_config(stack: str) -> dict:
    """The `aks-serving:` sections of Pulumi.<stack>.yaml."""
    document = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())
    return {k.split(":", 1)[1]: v for k, v in document["config"].items() if k.startswith("aks-serving:")}


def run_program(config: dict, *, stack: str = "test", preview: bool = False,
                attached_cluster: Optional[dict] = None, secret_sections: tuple[str, ...] = (),
                stand_in: Optional[AzureStandIn] = None, read_exports: bool = True,
                program: Path = ROOT / "__main__.py") -> Run:
    """Run `program` (this project's __main__.py) as Pulumi's language host does, through runpy, with `config`
    (sections without the project prefix) as the stack config; `secret_sections` are the ones Pulumi would
    hold encrypted. `read_exports=False` leaves the exports unread (they stay empty): reading them back is the
    test's work, which the program cost bench leaves out; the bench also runs its floor programs here."""
    stand_in = stand_in or AzureStandIn(attached_cluster)
    # Each run gets a loop of its own: async tests elsewhere in the session leave none current.
    asyncio.set_event_loop(asyncio.new_event_loop())
    capture = _Capture()
    logger = logging.getLogger(f"pulumi-mocks-{id(capture)}")
    logger.addHandler(capture)
    settings.reset_options(project="aks-serving", stack=stack, preview=preview)
    pulumi.runtime.set_all_config({f"aks-serving:{k}": json.dumps(v) for k, v in config.items()},
                                  [f"aks-serving:{s}" for s in secret_sections])
    mocks.set_mocks(stand_in, project="aks-serving", stack=stack, preview=preview, logger=logger,
                    monitor=RecordingMonitor(stand_in))
    from components import aks_versions
    real_versions, aks_versions.fetch_versions = aks_versions.fetch_versions, stand_in.kubernetes_versions
    try:
        with registries_stood_in(stand_in):
            _sync_await(run_pulumi_func(lambda: runpy.run_path(str(program), run_name="__main__")))
    finally:
        aks_versions.fetch_versions = real_versions
    exports, secret = {}, set()
    for name, value in settings.get_root_resource().outputs.items() if read_exports else ():
        output = pulumi.Output.from_input(value)
        exports[name] = _sync_await(output.future())
        if _sync_await(output.is_secret()):
            secret.add(name)
    return Run(stand_in.created, stand_in.invokes, exports, secret, capture.messages)

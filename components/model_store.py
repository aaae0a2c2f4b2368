"""Model files and scoring code in the workspace storage container, read by pods through workload identity.

Each model set and each source folder is uploaded once under a content-hash prefix (`models/<sha256>/`,
`code/<sha256>/`): the same content is one upload however many services use it, and a changed file is a
new prefix, so a running replica's files never change under it. Beside the prefix, `<prefix>.json` lists
its files and is written after all of them: a Deployment waits for that one blob, not one per file (a
source folder may hold dozens), and the fetcher, which reads `<prefix>/`, never sees it. Pods read the
prefix at start with the models' user-assigned identity, federated to each models namespace's
ServiceAccount and holding only Storage Blob Data Reader on this one container: no SAS or account key is
in any pod spec.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pulumi
from pulumi_azure_native import authorization, managedidentity, storage

from components.roles import role_definition_id
from fetcher.content import content_hash, folder_files

BLOB_DATA_READER_ROLE = "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1"  # built-in Storage Blob Data Reader
BLOB_DATA_CONTRIBUTOR_ROLE = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"  # built-in Storage Blob Data Contributor
SERVICE_ACCOUNT = "model"  # the ServiceAccount every model pod runs as, in each models namespace
TOKEN_AUDIENCE = "api://AzureADTokenExchange"


@dataclass(frozen=True)
class Upload:
    prefix: str  # `<kind>/<sha256>`; the fetcher checks the downloaded files against the hash
    manifest: storage.Blob  # written after every file: what a pod waits for (shared by equal content)


class ModelStore(pulumi.ComponentResource):
    """The models' identity and their content-addressed uploads."""

    root: Path  # the project folder the config's paths are relative to
    access: list[pulumi.Resource]  # the read role and the federated credentials
    client_id: pulumi.Output[str]
    tenant_id: pulumi.Output[str]

    def __init__(self, name: str, *, root: Path, resource_group_name: pulumi.Input[str], location: str,
                 storage_account_id: pulumi.Input[str], storage_account_name: pulumi.Input[str],
                 container_name: pulumi.Input[str], oidc_issuer_url: pulumi.Input[Optional[str]],
                 namespaces: list[str], opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("aks-serving:index:ModelStore", name, None, opts)
        self._name, self.root = name, root
        self._account, self._container, self._rg = storage_account_name, container_name, resource_group_name
        self._uploads: dict[str, Upload] = {}
        self._by_sources: dict[tuple, Upload] = {}
        self._blobs: dict[str, storage.Blob] = {}
        child = pulumi.ResourceOptions(parent=self)
        identity = managedidentity.UserAssignedIdentity(
            f"{name}-identity", resource_group_name=resource_group_name, location=location,
            tags={"managed-by": "aks-serving"}, opts=child)
        self._identity, self._storage_account_id = identity, storage_account_id
        self._client = authorization.get_client_config_output(opts=pulumi.InvokeOutputOptions(parent=self))
        reader = self._grant("reader", BLOB_DATA_READER_ROLE, container_name)
        federations: list[managedidentity.FederatedIdentityCredential] = []
        for namespace in namespaces:
            # Workload identity: the cluster's OIDC issuer vouches for this namespace's ServiceAccount. One at a
            # time: Azure refuses (409 ConcurrentFederatedIdentityCredentialsWritesForSingleManagedIdentity)
            # concurrent writes of credentials on one identity.
            federations.append(managedidentity.FederatedIdentityCredential(
                f"{name}-federation-{namespace}", resource_group_name=resource_group_name,
                resource_name_=identity.name, federated_identity_credential_resource_name=f"models-{namespace}",
                issuer=oidc_issuer_url, subject=f"system:serviceaccount:{namespace}:{SERVICE_ACCOUNT}",
                audiences=[TOKEN_AUDIENCE], opts=pulumi.ResourceOptions(parent=self, depends_on=federations[-1:])))
        # What a model pod needs before it starts: its token exchange and its read access exist (the fetcher
        # waits out the seconds to minutes Entra takes to propagate them).
        self.access: list[pulumi.Resource] = [reader, *federations]
        self.client_id = identity.client_id
        self.tenant_id = identity.tenant_id
        self.register_outputs({"clientId": self.client_id})

    @property
    def subscription_id(self) -> pulumi.Output[str]:
        return self._client.subscription_id

    def grant_model_data(self, container_name: pulumi.Input[str]) -> authorization.RoleAssignment:
        """Write access to the model data container, for services whose ModelDataCollector uploads rows."""
        return self._grant("modeldata-writer", BLOB_DATA_CONTRIBUTOR_ROLE, container_name)

    def _grant(self, suffix: str, role: str, container_name: pulumi.Input[str]) -> authorization.RoleAssignment:
        return authorization.RoleAssignment(
            f"{self._name}-{suffix}", principal_id=self._identity.principal_id,
            principal_type=authorization.PrincipalType.SERVICE_PRINCIPAL,
            role_definition_id=role_definition_id(self._client.subscription_id, role),
            scope=pulumi.Output.concat(self._storage_account_id, "/blobServices/default/containers/", container_name),
            opts=pulumi.ResourceOptions(parent=self))

    def upload(self, kind: str, sources: list[tuple[str, Path]]) -> Upload:
        """Upload folders (or files), each under its name inside the prefix; `sources` = [(name, path)]."""
        key = (kind, tuple((name, str(source)) for name, source in sources))
        if key in self._by_sources:  # many services share one model or code folder: read and hash it once
            return self._by_sources[key]
        files = [(f"{name}/{rel}" if name else rel, path)
                 for name, source in sources for rel, path in folder_files(self.root / source)]
        if not files:
            raise ValueError(f"{kind}: nothing to upload from {', '.join(str(s) for _, s in sources)}")
        prefix = f"{kind}/{content_hash((rel, path.read_bytes()) for rel, path in files)}"
        if prefix not in self._uploads:
            blobs = [self._blob(f"{prefix}/{rel}", pulumi.FileAsset(str(path))) for rel, path in files]
            listing = json.dumps({"prefix": prefix, "files": sorted(rel for rel, _ in files)}, indent=1)
            manifest = self._blob(f"{prefix}.json", pulumi.StringAsset(listing), depends_on=blobs)
            self._uploads[prefix] = Upload(prefix, manifest)
        self._by_sources[key] = self._uploads[prefix]
        return self._uploads[prefix]

    def _blob(self, blob_name: str, source: pulumi.Asset, depends_on: Optional[list] = None) -> storage.Blob:
        if blob_name not in self._blobs:
            self._blobs[blob_name] = storage.Blob(
                f"{self._name}-{blob_name}", resource_group_name=self._rg, account_name=self._account,
                container_name=self._container, blob_name=blob_name, source=source,
                type=storage.BlobType.BLOCK, opts=pulumi.ResourceOptions(parent=self, depends_on=depends_on))
        return self._blobs[blob_name]

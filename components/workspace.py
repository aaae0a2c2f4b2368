"""The workspace: what Azure ML's workspace held for serving, as plain Azure resources.

A resource group, a container registry for environment images (no admin user: pushes and pulls go
through Entra identities), a storage account with a private container for model files, and Log Analytics
(+ Application Insights) for the cluster's and the services' telemetry.
"""
from __future__ import annotations

import re
from typing import Optional

import pulumi
import pulumi_random as random
from pulumi_azure_native import (applicationinsights, authorization, containerregistry, operationalinsights,
                                 resources, storage)

from components.config import Workspace as WorkspaceConfig
from components.roles import role_definition_id

ACR_PULL_ROLE = "7f951dda-4ed3-4680-a7ca-43fe172d538d"  # built-in AcrPull
MODEL_DATA_CONTAINER = "modeldata"  # v1's container for ModelDataCollector rows


class Workspace(pulumi.ComponentResource):
    """Resource group, registry, model storage and logs shared by every service of the stack."""

    resource_group_name: pulumi.Output[str]
    registry_id: pulumi.Output[str]
    registry_login_server: pulumi.Output[str]
    storage_account_id: pulumi.Output[str]
    storage_account_name: pulumi.Output[str]
    blob_endpoint: pulumi.Output[str]  # https://<account>.blob.core.windows.net/ (or a sovereign cloud's)
    models_container_name: pulumi.Output[str]
    model_data_container_name: pulumi.Output[str]
    log_analytics_workspace_id: pulumi.Output[str]
    app_insights_connection_string: pulumi.Output[Optional[str]]  # secret

    def __init__(self, name: str, config: WorkspaceConfig, *, production: bool, retain_group: bool = False,
                 opts: Optional[pulumi.ResourceOptions] = None):
        """`retain_group`: the resource group holds a retained cluster. Deleting a group deletes all it holds,
        whatever Pulumi tracks, so the group is kept too (Pulumi still deletes each of its own resources)."""
        super().__init__("aks-serving:index:Workspace", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        common = {"location": config.location, "tags": {"managed-by": "aks-serving"}}
        group = resources.ResourceGroup(f"{name}-rg", resource_group_name=config.resource_group_name, **common,
                                        opts=pulumi.ResourceOptions(parent=self, retain_on_delete=retain_group))
        rg = group.name
        # Registry and storage names are global across Azure: a stable random suffix keeps them unique.
        suffix = random.RandomString(f"{name}-suffix", length=6, special=False, upper=False, opts=child).result
        base = re.sub(r"[^a-z0-9]", "", config.name.lower())

        registry = containerregistry.Registry(
            f"{name}-registry", resource_group_name=rg, **common,
            registry_name=config.registry_name or suffix.apply(lambda s: f"{base[:40]}acr{s}"),
            sku=containerregistry.SkuArgs(name="Premium" if production else "Standard"),
            admin_user_enabled=False, anonymous_pull_enabled=False, opts=child)

        account = storage.StorageAccount(
            f"{name}-storage", resource_group_name=rg, **common,
            account_name=config.storage_account_name or suffix.apply(lambda s: f"{base[:15]}mdl{s}"),
            kind=storage.Kind.STORAGE_V2,
            sku=storage.SkuArgs(name=storage.SkuName.STANDARD_ZRS if production else storage.SkuName.STANDARD_LRS),
            enable_https_traffic_only=True, minimum_tls_version=storage.MinimumTlsVersion.TLS1_2,
            allow_blob_public_access=False, default_to_o_auth_authentication=True, opts=child)
        container = storage.BlobContainer(
            f"{name}-models", resource_group_name=rg, account_name=account.name,
            container_name=config.models_container, public_access=storage.PublicAccess.NONE, opts=child)
        # Where v1's ModelDataCollector wrote (services with collectModelData: true), as v1's workspace had it.
        model_data = storage.BlobContainer(
            f"{name}-modeldata", resource_group_name=rg, account_name=account.name,
            container_name=MODEL_DATA_CONTAINER, public_access=storage.PublicAccess.NONE, opts=child)

        logs = operationalinsights.Workspace(
            f"{name}-logs", resource_group_name=rg, **common,
            sku=operationalinsights.WorkspaceSkuArgs(name="PerGB2018"),
            retention_in_days=config.log_retention_days, opts=child)
        insights = applicationinsights.Component(
            f"{name}-insights", resource_group_name=rg, **common, kind="web", application_type="web",
            workspace_resource_id=logs.id, ingestion_mode="LogAnalytics",
            # The connection string and key are write access to the resource: secret in the state, as they
            # are everywhere the program passes them on (the app-insights Kubernetes Secrets).
            opts=child.merge(pulumi.ResourceOptions(
                additional_secret_outputs=["connectionString", "instrumentationKey"]))
        ) if config.application_insights else None

        self.resource_group_name = rg
        self.registry_id = registry.id
        self.registry_login_server = registry.login_server
        self.storage_account_id = account.id
        self.storage_account_name = account.name
        self.blob_endpoint = account.primary_endpoints.apply(lambda e: e.blob)
        self.models_container_name = container.name
        self.model_data_container_name = model_data.name
        self.log_analytics_workspace_id = logs.id
        self.app_insights_connection_string = pulumi.Output.secret(
            insights.connection_string if insights else None)
        self.register_outputs({
            "resourceGroupName": self.resource_group_name, "registryLoginServer": self.registry_login_server,
            "storageAccountName": self.storage_account_name, "modelsContainerName": self.models_container_name,
        })

    def grant_pull(self, name: str, principal_id: pulumi.Input[str], registry_id: Optional[str] = None,
                   registry_subscription: Optional[str] = None) -> authorization.RoleAssignment:
        """AcrPull for a cluster's kubelet identity, so nodes pull without a secret: on the workspace registry,
        or on `registry_id` (the global registry, maybe in another subscription, whose role definition ID the
        assignment must use)."""
        subscription = registry_subscription or authorization.get_client_config_output(
            opts=pulumi.InvokeOutputOptions(parent=self)).subscription_id
        return authorization.RoleAssignment(
            name, principal_id=principal_id,
            principal_type=authorization.PrincipalType.SERVICE_PRINCIPAL,
            role_definition_id=role_definition_id(subscription, ACR_PULL_ROLE),
            scope=registry_id or self.registry_id,
            opts=pulumi.ResourceOptions(parent=self))

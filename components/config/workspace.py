"""`workspace:` the Azure ML workspace's resources: registry, storage, logs."""
from __future__ import annotations

from typing import Optional

from pydantic import Field, field_validator, model_validator

from components.config_base import ConfigModel as _Model
from components.config_base import check_named as _named
from components.config_base import region_name
from policies.rules import naming


class Workspace(_Model):
    name: str = Field(min_length=1, max_length=40)
    location: str
    resource_group: Optional[str] = None
    # Unset registry and storage names are auto-named by Pulumi (they must be globally unique).
    registry_name: Optional[str] = None
    storage_account_name: Optional[str] = None
    models_container: str = "models"
    # A shared registry searched for environment images, as its resource ID: the cluster is granted AcrPull on it.
    global_registry: Optional[str] = None
    log_retention_days: int = Field(30, ge=30, le=730)
    application_insights: bool = True

    _region = field_validator("location", mode="before")(region_name)

    @model_validator(mode="after")
    def _names(self) -> "Workspace":
        _named("registryName", naming.check_registry_name, self.registry_name)
        _named("storageAccountName", naming.check_storage_account_name, self.storage_account_name)
        if self.global_registry is not None and _registry_id_parts(self.global_registry) is None:
            raise ValueError(
                f"globalRegistry: {self.global_registry!r} must be the registry's resource ID, "
                "/subscriptions/<subscription>/resourceGroups/<group>/providers/Microsoft.ContainerRegistry/registries/"
                "<name> (`az acr show -n <name> --query id -o tsv`): the cluster's nodes are granted AcrPull on it, "
                "or they could not pull the images found there")
        return self

    @property
    def global_registry_login_server(self) -> Optional[str]:
        parts = _registry_id_parts(self.global_registry) if self.global_registry else None
        return f"{parts[8].lower()}.azurecr.io" if parts else None

    @property
    def global_registry_subscription(self) -> Optional[str]:
        parts = _registry_id_parts(self.global_registry) if self.global_registry else None
        return parts[2] if parts else None

    @property
    def resource_group_name(self) -> str:
        return self.resource_group or f"rg-{self.name}"


def _registry_id_parts(resource_id: str) -> Optional[list[str]]:
    parts = resource_id.split("/")
    if len(parts) != 9 or parts[0] or not all(parts[1:]):
        return None
    fixed = [(1, "subscriptions"), (3, "resourcegroups"), (5, "providers"), (6, "microsoft.containerregistry"),
             (7, "registries")]
    if any(parts[i].lower() != word for i, word in fixed) or naming.check_registry_name(parts[8]):
        return None
    return parts

"""`workspace:` the Azure ML workspace's resources: registry, storage, logs."""
from __future__ import annotations

from typing import Optional

from pydantic import Field, model_validator

from components.config_base import ConfigModel as _Model
from components.config_base import check_named as _named
from policies.rules import naming


class Workspace(_Model):
    name: str = Field(min_length=1, max_length=40)
    location: str
    resource_group: Optional[str] = None
    # Unset registry and storage names are auto-named by Pulumi (they must be globally unique).
    registry_name: Optional[str] = None
    storage_account_name: Optional[str] = None
    models_container: str = "models"
    global_registry: Optional[str] = None
    log_retention_days: int = Field(30, ge=30, le=730)
    application_insights: bool = True

    @model_validator(mode="after")
    def _names(self) -> "Workspace":
        _named("registryName", naming.check_registry_name, self.registry_name)
        _named("storageAccountName", naming.check_storage_account_name, self.storage_account_name)
        return self

    @property
    def resource_group_name(self) -> str:
        return self.resource_group or f"rg-{self.name}"

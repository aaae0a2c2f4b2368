"""`environments:`, `services:` and `endpoints:`: what a model image is built from, and each model
deployment with the fields, defaults and rules of v1's AksWebservice and AksEndpoint."""
from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import AliasChoices, Field, field_validator, model_validator

from components.config_base import ConfigModel as _Model
from components.config_base import check_named as _named
from components.config.token_auth import TokenAuth
from components.model_refs import ModelRef, duplicate_ids
from policies.rules import naming

DEFAULT_BASE_IMAGE = "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04"
MAX_MODELS_PER_SERVICE = 1000
MAX_ENDPOINT_VERSIONS = 6
# Tags, properties and descriptions become annotations, and an object's annotations together may hold 256 KiB.
MAX_DESCRIPTION_CHARS = 4096
MAX_METADATA_ENTRIES = 64
MAX_METADATA_KEY_CHARS, MAX_METADATA_VALUE_CHARS = 256, 1024


class Environment(_Model):
    """What a model image is built from; its name does not count towards the image hash."""

    conda_file: str
    base_image: str = DEFAULT_BASE_IMAGE
    docker_steps: list[str] = []


class Described(_Model):
    """v1's description, tags and properties on a service, an endpoint or an endpoint version: kept as the
    Kubernetes objects' annotations and in the stack outputs, as v1 kept them with the Webservice."""

    description: Optional[str] = Field(None, max_length=MAX_DESCRIPTION_CHARS)
    tags: dict[str, str] = Field({}, max_length=MAX_METADATA_ENTRIES)
    properties: dict[str, str] = Field({}, max_length=MAX_METADATA_ENTRIES)

    @field_validator("tags", "properties", mode="before")
    @classmethod
    def _scalars_as_text(cls, value: Any) -> Any:
        # v1 took {'modelVersion': 'b'}; YAML turns `version: 2` into a number, which v1 would have sent as text.
        if not isinstance(value, dict):
            return value
        return {k: str(v).lower() if isinstance(v, bool) else str(v) if isinstance(v, (int, float)) else v
                for k, v in value.items()}

    @model_validator(mode="after")
    def _metadata_sizes(self) -> "Described":
        for field in ("tags", "properties"):
            for key, value in getattr(self, field).items():
                if not key.strip() or len(key) > MAX_METADATA_KEY_CHARS:
                    raise ValueError(f"{field}: key {key[:40]!r} must be 1 to {MAX_METADATA_KEY_CHARS} characters")
                if len(value) > MAX_METADATA_VALUE_CHARS:
                    raise ValueError(f"{field}.{key}: at most {MAX_METADATA_VALUE_CHARS} characters "
                                     f"(it has {len(value)})")
        return self


class Autoscale(_Model):
    enabled: Optional[bool] = None  # unset: on, unless numReplicas fixes the count (as v1)
    min_replicas: int = Field(1, gt=0)
    max_replicas: int = Field(10, gt=0)
    target_utilization: int = Field(70, gt=0, le=100)
    refresh_seconds: int = Field(1, gt=0)
    stable_window_seconds: int = Field(60, gt=0)

    @model_validator(mode="after")
    def _rules(self) -> "Autoscale":
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"minReplicas: must be <= maxReplicas ({self.min_replicas} > {self.max_replicas})")
        return self


class LivenessProbe(_Model):
    period_seconds: int = Field(10, gt=0)
    initial_delay_seconds: int = Field(310, gt=0)
    timeout_seconds: int = Field(2, gt=0)
    success_threshold: int = Field(1, gt=0)
    failure_threshold: int = Field(3, gt=0)


class Keys(_Model):
    """Bump a version to regenerate that key (v1's regen_key) while the other keeps working; or give your
    own key (v1's primary_key / secondary_key), as a Pulumi secret only (loading.SECRET_PATHS), which then
    replaces the generated one and its version."""

    primary_version: int = Field(1, gt=0)
    secondary_version: int = Field(1, gt=0)
    primary_key: Optional[str] = None
    secondary_key: Optional[str] = None

    @model_validator(mode="after")
    def _own_keys(self) -> "Keys":
        for field, value in (("primaryKey", self.primary_key), ("secondaryKey", self.secondary_key)):
            # The router strips a key it reads from its Secret, and never stores an empty one.
            if value is not None and (not value or value != value.strip()):
                raise ValueError(f"{field}: must be non-empty, without leading or trailing whitespace")
        return self


class AuthSettings(_Model):
    """Who may call a scoring URI: keys (v1's default), Entra-style tokens, or nobody checks."""

    auth_enabled: Optional[bool] = None  # unset: on, unless token auth replaces it
    token_auth_enabled: bool = False
    token_auth: Optional[TokenAuth] = None  # unset: tokens signed by the stack's own key; set: an OIDC issuer's
    keys: Keys = Keys()

    @model_validator(mode="after")
    def _auth_rules(self) -> "AuthSettings":
        if self.auth_enabled and self.token_auth_enabled:
            raise ValueError("tokenAuthEnabled: token auth replaces key auth; set authEnabled: false to use tokens")
        if self.token_auth is not None and not self.token_auth_enabled:
            raise ValueError("tokenAuth: applies to token auth only; set tokenAuthEnabled: true and authEnabled: false")
        return self

    @property
    def uses_stack_tokens(self) -> bool:
        """Token auth with the stack's own signing key (no OIDC issuer named)."""
        return self.token_auth_enabled and self.token_auth is None

    @property
    def auth_mode(self) -> Literal["key", "token", "none"]:
        if self.token_auth_enabled:
            return "token"
        return "none" if self.auth_enabled is False else "key"


class DeploymentSpec(Described):
    """One model deployment, with the fields and defaults of v1's AksWebservice.deploy_configuration."""

    environment: str
    entry_script: str
    source_directory: Optional[str] = None
    models: list[ModelRef] = Field([], max_length=MAX_MODELS_PER_SERVICE)
    cpu_cores: float = Field(0.1, gt=0)
    cpu_cores_limit: Optional[float] = Field(None, gt=0)
    memory_gb: float = Field(0.5, gt=0)
    memory_gb_limit: Optional[float] = Field(None, gt=0)
    gpu_cores: int = Field(0, ge=0)
    fpgas: int = Field(0, ge=0)
    node_pool: Optional[str] = None
    num_replicas: Optional[int] = Field(None, gt=0)
    autoscale: Autoscale = Autoscale()
    replica_max_concurrent_requests: int = Field(1, gt=0)
    max_request_wait_time_ms: int = Field(500, gt=0)
    scoring_timeout_ms: int = Field(60000, gt=0)
    liveness_probe: LivenessProbe = LivenessProbe()
    namespace: Optional[str] = None
    # v1's collect_model_data: azureml.monitoring's ModelDataCollector writes rows (off: collect() does nothing).
    collect_model_data: bool = False
    # v1's enable_app_insights (az ml's deploymentconfig spelled it appInsightsEnabled): requests, print() and
    # exceptions go to the workspace's Application Insights.
    enable_app_insights: bool = Field(False, validation_alias=AliasChoices("enableAppInsights", "appInsightsEnabled",
                                                                           "enable_app_insights"))

    @model_validator(mode="after")
    def _deployment_rules(self) -> "DeploymentSpec":
        if self.cpu_cores_limit is not None and self.cpu_cores_limit < self.cpu_cores:
            raise ValueError(f"cpuCoresLimit: must be >= cpuCores ({self.cpu_cores})")
        if self.memory_gb_limit is not None and self.memory_gb_limit < self.memory_gb:
            raise ValueError(f"memoryGbLimit: must be >= memoryGb ({self.memory_gb})")
        if self.fpgas:
            raise ValueError("fpgas: AKS exposes no FPGA device to pods, so FPGA models cannot be served; "
                             "deploy the model for CPU or GPU")
        if self.num_replicas is not None and self.autoscale.enabled:
            raise ValueError("numReplicas: a fixed replica count cannot be combined with autoscale.enabled: true")
        if self.autoscale.enabled is False and self.num_replicas is None:
            raise ValueError("numReplicas: autoscale.enabled: false needs numReplicas")
        _named("namespace", naming.check_namespace, self.namespace)
        if repeated := duplicate_ids(self.models):
            raise ValueError(f"models: {', '.join(repeated)} listed twice (name:version must be unique in a "
                             f"deployment, as v1's Model.get_model_path finds one)")
        return self

    @property
    def autoscale_enabled(self) -> bool:
        return self.autoscale.enabled if self.autoscale.enabled is not None else self.num_replicas is None


class ServiceSpec(DeploymentSpec, AuthSettings):
    """A service with its own scoring URI and auth."""


class EndpointVersion(DeploymentSpec):
    traffic_percentile: float = Field(0, ge=0, le=100)
    is_default: bool = False
    is_control_version_type: bool = False


class Endpoint(AuthSettings, Described):
    """v1's AksEndpoint: up to six versions behind one scoring URI (and so one auth), split by traffic share."""

    versions: dict[str, EndpointVersion] = Field(min_length=1, max_length=MAX_ENDPOINT_VERSIONS)

    @model_validator(mode="after")
    def _rules(self) -> "Endpoint":
        for name in self.versions:
            # Short names like v1 are fine: the service-name rule applies to <endpoint>-<version>.
            _named(f"versions.{name}", naming.check_version_name, name)
        total = sum(v.traffic_percentile for v in self.versions.values())
        if total > 100:
            raise ValueError(f"versions: traffic percentiles add up to {total:g}; they may add up to at most 100")
        if len(defaults := [n for n, v in self.versions.items() if v.is_default]) > 1:
            raise ValueError(f"versions: only one version can be the default; {', '.join(defaults)} all say isDefault")
        if len(controls := [n for n, v in self.versions.items() if v.is_control_version_type]) > 1:
            raise ValueError(f"versions: at most one control version; {', '.join(controls)} all say isControlVersionType")
        return self

    @property
    def default_version(self) -> str:
        return next((n for n, v in self.versions.items() if v.is_default), next(iter(self.versions)))

    def effective_traffic(self) -> dict[str, float]:
        """Each version's share; the default gets its own plus whatever no version claimed (as v1)."""
        shares = {n: v.traffic_percentile for n, v in self.versions.items()}
        shares[self.default_version] += 100 - sum(shares.values())
        return shares

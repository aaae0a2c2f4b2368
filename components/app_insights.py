"""Application Insights for the services that ask for it (v1's enable_app_insights): the workspace's connection
string in a Kubernetes Secret, and the environment that hands it to router and model pods.

The router records every request of those services (router/telemetry.py reads
APPLICATIONINSIGHTS_CONNECTION_STRING). The model server (azureml-inference-server-http) records print()
output and exceptions from run() when AML_APP_INSIGHTS_ENABLED is true and AML_APP_INSIGHTS_KEY holds the
instrumentation key; it builds its exporters from the key alone, and both its exporters (OpenTelemetry's
from 1.5, OpenCensus' before) take the ingestion endpoint from APPLICATIONINSIGHTS_CONNECTION_STRING, so
the pod gets all three and ingestion goes by connection string. Values only ever come from the Secret.
"""
from __future__ import annotations

from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

SECRET_NAME = "app-insights"
CONNECTION_STRING_KEY = "connection-string"
INSTRUMENTATION_KEY_KEY = "instrumentation-key"
CONNECTION_STRING_ENV = "APPLICATIONINSIGHTS_CONNECTION_STRING"  # router/telemetry.py reads the same name


def _from_secret(name: str, key: str) -> dict:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": SECRET_NAME, "key": key}}}


def router_env() -> list[dict]:
    return [_from_secret(CONNECTION_STRING_ENV, CONNECTION_STRING_KEY)]


def model_env() -> list[dict]:
    return [{"name": "AML_APP_INSIGHTS_ENABLED", "value": "true"},
            _from_secret("AML_APP_INSIGHTS_KEY", INSTRUMENTATION_KEY_KEY),
            _from_secret(CONNECTION_STRING_ENV, CONNECTION_STRING_KEY)]


def instrumentation_key(connection_string: Optional[str]) -> Optional[str]:
    """The `InstrumentationKey=` part of a connection string (keys are case-insensitive, as the SDKs parse them)."""
    for part in (connection_string or "").split(";"):
        key, _, value = part.partition("=")
        if key.strip().lower() == "instrumentationkey":
            return value.strip()
    return None


def connection_secret(resource_name: str, namespace: pulumi.Input[str], connection_string: pulumi.Output[str],
                      labels: dict[str, str], opts: pulumi.ResourceOptions) -> k8s.core.v1.Secret:
    """The Secret `app-insights` in `namespace`; its values stay Pulumi secrets in the state."""
    secret = pulumi.Output.secret(connection_string)
    return k8s.core.v1.Secret(
        resource_name, metadata={"name": SECRET_NAME, "namespace": namespace, "labels": labels},
        string_data={CONNECTION_STRING_KEY: secret, INSTRUMENTATION_KEY_KEY: secret.apply(instrumentation_key)},
        opts=opts)


def models_namespaces_with_app_insights(cfg) -> list[str]:
    """The models namespaces that run a deployment with enableAppInsights (each needs the Secret)."""
    found = [cfg.models_namespace_of(spec) for _, _, spec in cfg.deployments() if spec.enable_app_insights]
    return list(dict.fromkeys(found))

"""The whole stack config, typed and validated once.

One pydantic model per config section, one module per section (`workspace`, `cluster`, `router`,
`deployments`: environments, services and endpoints), `stack` for the rules that span sections and
`loading` for reading a stack file or `pulumi.Config()`. camelCase keys as users write them in
`Pulumi.<stack>.yaml`, Azure ML v1's defaults, and errors that name the key path and the rule. No Pulumi
import: the local deployment and the tests load stack files with `load_stack_file`; the Pulumi program
passes its `pulumi.Config` to `load_pulumi_config`.

Naming patterns, VM sizes and vCPU math live in the policy pack's rule module (`policies/rules`),
so a rule is written once and the CrossGuard pack enforces the same one on any stack.
"""
from components.config_base import ConfigError
from components.config.cluster import ApiServer, Cluster, Entra, Kubelogin, Network, NodePool, pool_capacity
from components.config.deployments import (DEFAULT_BASE_IMAGE, MAX_ENDPOINT_VERSIONS, MAX_MODELS_PER_SERVICE,
                                           AuthSettings, Autoscale, DeploymentSpec, Endpoint, EndpointVersion,
                                           Environment, Keys, LivenessProbe, ServiceSpec)
from components.config.loading import (PROJECT, SECRET_PATHS, SECTIONS, load_pulumi_config, load_stack_file,
                                       load_stack_text, parse_stack_config, secret_values)
from components.config.router import LETS_ENCRYPT, LoadBalancer, Router, Tls
from components.config.stack import (StackConfig, check_attached_pools, check_placement, config_warnings,
                                     version_service_name)
from components.config.workspace import Workspace

__all__ = [
    "ApiServer", "AuthSettings", "Autoscale", "Cluster", "ConfigError", "DEFAULT_BASE_IMAGE", "DeploymentSpec",
    "Endpoint", "EndpointVersion", "Entra", "Environment", "Keys", "Kubelogin", "LETS_ENCRYPT", "LivenessProbe",
    "LoadBalancer", "MAX_ENDPOINT_VERSIONS", "MAX_MODELS_PER_SERVICE", "Network", "NodePool", "PROJECT", "Router",
    "SECRET_PATHS", "SECTIONS", "ServiceSpec", "StackConfig", "Tls", "Workspace", "check_attached_pools",
    "check_placement", "config_warnings", "load_pulumi_config", "load_stack_file", "load_stack_text",
    "parse_stack_config", "pool_capacity", "secret_values", "version_service_name",
]

"""Builds the backend a service's config names."""
from __future__ import annotations

from ..settings import ServiceConfig


def build_backend(service: str, config: ServiceConfig, cluster=None):
    backend = config.backend
    if backend.kind == "static":
        from .static import StaticReplicas
        return StaticReplicas(backend)
    if backend.kind == "local":
        from .local import LocalReplicas
        return LocalReplicas(service, backend, config)
    if cluster is None:
        raise ValueError(f"service {service!r} has a kubernetes backend but the router is not in a cluster "
                         "(set router.cluster)")
    from .kubernetes import KubernetesReplicas
    return KubernetesReplicas(service, backend, cluster, config.autoscale)

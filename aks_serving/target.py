"""What every verb needs from a stack, deployed or local: its RouterConfig and a few operations on it.

The RouterConfig document (router/settings.py) is the same on both sides (components/router_config.py
renders it for the cluster's ConfigMap and for `make run`'s router.json), so resolving a name the user
typed (a service, an endpoint, an endpoint's version) is done here once, on that document.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Protocol

from aks_serving.errors import CommandError

KEY_FIELDS = {"primary": "primaryKey", "secondary": "secondaryKey"}


@dataclass
class LogSource:
    """One replica's log: a pod, or a `make run` replica's file."""

    name: str
    lines: Iterator[str]


class Target(Protocol):
    label: str  # how messages name the stack: "stack dev", "the local stack dev"

    def router_config(self) -> dict: ...
    def status(self) -> dict: ...  # the router's admin /status document
    def log_sources(self, service: str, tail: int | None, follow: bool) -> list[LogSource]: ...
    def read_keys(self, owner: str, auth: dict) -> dict[str, str]: ...  # {"primaryKey": ..., "secondaryKey": ...}
    def write_key(self, owner: str, auth: dict, field: str, value: str) -> None: ...
    def keep_key_advice(self, owner: str, kind: str, field: str) -> list[str]: ...
    def mint_token(self, owner: str, token_settings: dict) -> dict: ...


def deployment_service(config: dict, name: str, version: str | None) -> str:
    """The router service whose replicas are `name` (a service) or `name`'s version (an endpoint)."""
    endpoint = config["endpoints"].get(name)
    if version is not None:
        if endpoint is None:
            raise CommandError(f"{name}: --version is for endpoints, and {name} is not one ({_names(config)})", 2)
        if version not in endpoint["versions"]:
            raise CommandError(f"{name}: no version {version}; its versions are {_versions(endpoint)}", 2)
        return endpoint["versions"][version]["service"]
    if name in config["services"]:  # a version's own name (`<endpoint>-<version>`) is fine too
        return name
    if endpoint is not None:
        raise CommandError(f"{name} is an endpoint: pick a version with --version ({_versions(endpoint)})", 2)
    raise CommandError(f"{name}: no such service or endpoint ({_names(config)})", 2)


def auth_owner(config: dict, name: str) -> tuple[str, dict]:
    """(kind, auth settings) of the service or endpoint that has a scoring URI of its own named `name`."""
    if name in config["services"] and name not in _version_services(config):
        return "services", config["services"][name]["auth"]
    if name in config["endpoints"]:
        return "endpoints", config["endpoints"][name]["auth"]
    raise CommandError(f"{name}: no such service or endpoint ({_names(config)})", 2)


def owners_with_auth(config: dict, mode: str) -> list[str]:
    own = [n for n, s in config["services"].items() if n not in _version_services(config)]
    return sorted(n for n in own + list(config["endpoints"])
                  if (config["services"].get(n) or config["endpoints"].get(n))["auth"]["mode"] == mode)


def _version_services(config: dict) -> set[str]:
    return {v["service"] for e in config["endpoints"].values() for v in e["versions"].values()}


def _versions(endpoint: dict) -> str:
    default = endpoint.get("defaultVersion")
    return ", ".join(f"{v} (default)" if v == default else v for v in endpoint["versions"])


def _names(config: dict) -> str:
    services = sorted(n for n in config["services"] if n not in _version_services(config))
    endpoints = sorted(config["endpoints"])
    parts = ([f"services: {', '.join(services)}"] if services else []) + \
            ([f"endpoints: {', '.join(endpoints)}"] if endpoints else [])
    return "; ".join(parts) or "it has none"

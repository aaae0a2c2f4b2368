"""The engine's side of the CrossGuard analyzer protocol, for driving the policy pack without the Pulumi CLI.

`PolicyPack` starts the pack the way `pulumi preview --policy-pack policies` does for a Python pack
(pulumi/pulumi sdk/go/common/resource/plugin/analyzer_plugin.go and the pulumi-analyzer-policy-python shim):
`<pack venv>/bin/python -u -m pulumi.policy <engine address> .` with the pack folder as working directory,
PULUMI_PROJECT / PULUMI_STACK / PULUMI_DRY_RUN / PULUMI_ORGANIZATION (and PULUMI_CONFIG) in the environment;
the pack prints the port of its gRPC Analyzer server on stdout. The Python pack only parses the engine
address and never dials it (pulumi/policy/__main__.py), so no stand-in engine runs; a closed port is passed.

Then, like the engine: GetAnalyzerInfo, ConfigureStack, Configure with every policy's enforcement level and
the schema defaults overlaid with the given pack config (the engine's ReconcilePolicyPackConfig), Analyze per
resource and AnalyzeStack over all of them. Properties go over the wire as the engine marshals them
(google.protobuf.Struct, camelCase, unknowns as the sentinel string UNKNOWN, secrets as signature objects).

No pytest here: the tests and the offline check both use it. Uses the pulumi SDK's analyzer stubs from the
virtualenv that imports it (the protocol is the same across its protobuf 5 and 6 builds).
"""
from __future__ import annotations

import json
import os
import selectors
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence

import grpc
import pulumi
from google.protobuf import empty_pb2, json_format, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

ROOT = Path(__file__).resolve().parents[1]
PACK_DIR = ROOT / "policies"
PACK_PYTHON = ROOT / ".venv-policies" / "bin" / "python"
ENGINE_ADDRESS = "127.0.0.1:0"  # never dialled by a Python pack (see above)
PROJECT = "aks-serving"
STACK_TYPE = "pulumi:pulumi:Stack"

# The engine's wire forms (pulumi/pulumi sdk/go/common/resource/plugin/rpc.go, properties.go).
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
SIG_KEY = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
ASSET_SIG = "c44067f5952c0a294b673a41bacd8c17"
ARCHIVE_SIG = "0def7320c3a5731c473e5ecbe6d01bc7"

_LEVELS = {analyzer_pb2.ADVISORY: "advisory", analyzer_pb2.MANDATORY: "mandatory",
           analyzer_pb2.DISABLED: "disabled", analyzer_pb2.REMEDIATE: "remediate"}
_LEVEL_VALUES = {name: value for value, name in _LEVELS.items()}


def secret(value: Any) -> dict:
    """A secret property value as the engine marshals it."""
    return {SIG_KEY: SECRET_SIG, "value": value}


@dataclass(frozen=True)
class Resource:
    """One resource as the engine describes it to an analyzer."""

    type: str
    name: str
    properties: Mapping[str, Any]
    urn: str = ""
    parent: str = ""  # URN
    custom: bool = True  # component resources go to AnalyzeStack only
    dependencies: Sequence[str] = ()
    property_dependencies: Mapping[str, Sequence[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Diagnostic:
    policy: str
    level: str  # advisory | mandatory | disabled | remediate
    message: str
    urn: str
    description: str
    resource: str = ""  # the Pulumi name of the resource Analyze was called for ("" from AnalyzeStack)

    @property
    def mandatory(self) -> bool:
        return self.level == "mandatory"


@dataclass(frozen=True)
class PolicyInfo:
    name: str
    level: str
    description: str
    kind: str  # resource | stack
    config_schema: dict  # {"properties": {...}, "required": [...]}


def urn(stack: str, type_: str, name: str, parent: str = "", project: str = PROJECT) -> str:
    """The URN the engine gives a resource: its type qualified by its parents' types (the stack's excepted)."""
    qualified = type_
    if parent:
        parent_type = _engine_urn(parent).split("::")[2]
        if parent_type != STACK_TYPE:
            qualified = f"{parent_type}${type_}"
    return f"urn:pulumi:{stack}::{project}::{qualified}::{name}"


def _engine_urn(urn_: str) -> str:
    """Pulumi's mocks keep the stack's type in the chain of its children; the engine does not."""
    parts = urn_.split("::")
    if len(parts) >= 4 and parts[2].startswith(STACK_TYPE + "$"):
        parts[2] = parts[2][len(STACK_TYPE) + 1:]
    return "::".join(parts)


def from_registrations(registrations: Iterable[Any], stack: str, project: str = PROJECT) -> list[Resource]:
    """Resources from recorded registrations (objects with type, name, inputs and the parent's URN, like
    tests/pulumi_mocks.py's Registered). The program's own component types (`<project>:...`) count as
    components; the inputs are taken as the engine's view (camelCase, secrets as signature objects)."""
    return [Resource(type=r.type, name=r.name, properties=dict(r.inputs),
                     urn=urn(stack, r.type, r.name, r.parent, project),
                     parent=_engine_urn(r.parent) if r.parent else "",
                     custom=not r.type.startswith(f"{project}:"))
            for r in registrations]


def to_struct(properties: Mapping[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(_wire(dict(properties), "properties"))
    return struct


def _wire(value: Any, path: str) -> Any:
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, (pulumi.Asset, pulumi.Archive)):
        return _asset(value, path)
    if isinstance(value, Mapping):
        return {str(k): _wire(v, f"{path}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_wire(v, f"{path}[{i}]") for i, v in enumerate(value)]
    raise TypeError(f"{path}: {type(value).__name__} cannot be sent to an analyzer")


def _asset(value: Any, path: str) -> dict:
    """Assets and archives as signature objects, the way the engine marshals them."""
    if isinstance(value, pulumi.Asset):
        wire = {SIG_KEY: ASSET_SIG}
        for attribute in ("path", "text", "uri"):
            if isinstance(getattr(value, attribute, None), str):
                wire[attribute] = getattr(value, attribute)
        return wire
    wire = {SIG_KEY: ARCHIVE_SIG}
    if isinstance(value, pulumi.AssetArchive):
        wire["assets"] = {k: _wire(v, f"{path}.{k}") for k, v in value.assets.items()}
    for attribute in ("path", "uri"):
        if isinstance(getattr(value, attribute, None), str):
            wire[attribute] = getattr(value, attribute)
    return wire


class PackFailed(RuntimeError):
    """The pack did not start, or a call to it failed; carries the pack's stderr."""


class PolicyPack:
    """A running policy pack and an Analyzer client to it. Use as a context manager."""

    def __init__(self, pack_dir: Path = PACK_DIR, python: Optional[Path] = None, *, stack: str = "dev",
                 project: str = PROJECT, dry_run: bool = True, organization: str = "organization",
                 stack_config: Optional[Mapping[str, Any]] = None, start_timeout: float = 60.0,
                 call_timeout: float = 60.0):
        self.pack_dir = Path(pack_dir)
        self.python = Path(python or os.environ.get("POLICY_PACK_PYTHON") or PACK_PYTHON)
        self.stack, self.project, self.dry_run, self.organization = stack, project, dry_run, organization
        self.stack_config = dict(stack_config or {})
        self.start_timeout, self.call_timeout = start_timeout, call_timeout
        self._process: Optional[subprocess.Popen] = None
        self._stderr = None
        self._stdout_rest: list[bytes] = []
        self._drainer: Optional[threading.Thread] = None
        self._channel: Optional[grpc.Channel] = None
        self._stub: Optional[analyzer_pb2_grpc.AnalyzerStub] = None
        self.port: Optional[int] = None
        self.policies: list[PolicyInfo] = []

    # ---- lifecycle -------------------------------------------------------------------------------------

    def __enter__(self) -> "PolicyPack":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self, config: Optional[Mapping[str, Any]] = None) -> "PolicyPack":
        if not self.python.exists():
            raise PackFailed(f"{self.python} does not exist; build the pack's virtualenv with `make venv`")
        env = dict(os.environ, PULUMI_PROJECT=self.project, PULUMI_STACK=self.stack,
                   PULUMI_DRY_RUN="true" if self.dry_run else "false", PULUMI_ORGANIZATION=self.organization)
        if self.stack_config:
            env["PULUMI_CONFIG"] = json.dumps(self.stack_config)
        self._stderr = tempfile.TemporaryFile()
        self._process = subprocess.Popen(
            [str(self.python), "-u", "-m", "pulumi.policy", ENGINE_ADDRESS, "."], cwd=self.pack_dir, env=env,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._stderr)
        try:
            self.port = self._read_port()
            self._drainer = threading.Thread(target=self._drain_stdout, daemon=True)
            self._drainer.start()
            self._channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
            grpc.channel_ready_future(self._channel).result(timeout=self.start_timeout)
            self._stub = analyzer_pb2_grpc.AnalyzerStub(self._channel)
            self.policies = self.get_analyzer_info()
            self.configure_stack()
            self.configure(config)
        except BaseException:
            self.close()
            raise
        return self

    def _read_port(self) -> int:
        """The first stdout line, as the engine reads it; bounded by start_timeout."""
        assert self._process and self._process.stdout
        deadline = time.monotonic() + self.start_timeout
        buffer = b""
        with selectors.DefaultSelector() as selector:
            selector.register(self._process.stdout, selectors.EVENT_READ)
            while b"\n" not in buffer:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise PackFailed(f"the policy pack printed no port within {self.start_timeout:g} s"
                                     f"{self._stderr_tail()}")
                if not selector.select(timeout=min(remaining, 0.5)):
                    if self._process.poll() is not None:
                        raise PackFailed(f"the policy pack exited with {self._process.returncode} before "
                                         f"printing its port{self._stderr_tail()}")
                    continue
                chunk = os.read(self._process.stdout.fileno(), 4096)
                if not chunk:
                    self._process.wait(timeout=5)
                    raise PackFailed(f"the policy pack exited with {self._process.returncode} before printing "
                                     f"its port{self._stderr_tail()}")
                buffer += chunk
        line, _, rest = buffer.partition(b"\n")
        self._stdout_rest.append(rest)
        try:
            return int(line.strip())
        except ValueError:
            raise PackFailed(f"the policy pack printed {line!r} instead of a port{self._stderr_tail()}") from None

    def _drain_stdout(self) -> None:
        # A policy that prints must not block on a full pipe.
        stream = self._process.stdout if self._process else None
        while stream is not None:
            chunk = stream.read1(4096) if hasattr(stream, "read1") else stream.read(4096)
            if not chunk:
                return
            self._stdout_rest.append(chunk)

    def stdout(self) -> str:
        """What the pack printed after its port (a policy's print calls)."""
        return b"".join(self._stdout_rest).decode(errors="replace")

    def stderr(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")

    def _stderr_tail(self) -> str:
        text = self.stderr().strip()
        return f"; its stderr:\n{text[-4000:]}" if text else ""

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None
        if self._process is not None:
            if self._process.poll() is None:
                self._process.terminate()
                try:
                    self._process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self._process.kill()
                    self._process.wait(timeout=10)
            if self._drainer is not None:
                self._drainer.join(timeout=10)  # the pipe is at EOF once the process is gone
                self._drainer = None
            if self._process.stdout:
                self._process.stdout.close()
            self._process = None
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    # ---- the protocol ----------------------------------------------------------------------------------

    def _call(self, method: str, request: Any) -> Any:
        if self._stub is None:
            raise PackFailed("the policy pack is not running")
        try:
            return getattr(self._stub, method)(request, timeout=self.call_timeout)
        except grpc.RpcError as err:
            raise PackFailed(f"{method} failed: {err.code().name}: {err.details()}{self._stderr_tail()}") from None

    def get_analyzer_info(self) -> list[PolicyInfo]:
        info = self._call("GetAnalyzerInfo", empty_pb2.Empty())
        kinds = {analyzer_pb2.POLICY_TYPE_RESOURCE: "resource", analyzer_pb2.POLICY_TYPE_STACK: "stack"}
        return [PolicyInfo(p.name, _LEVELS[p.enforcementLevel], p.description, kinds.get(p.policy_type, "unknown"),
                           json_format.MessageToDict(p.configSchema)) for p in info.policies]

    def configure_stack(self, tags: Optional[Mapping[str, str]] = None) -> None:
        request = analyzer_pb2.AnalyzerStackConfigureRequest(
            stack=self.stack, project=self.project, organization=self.organization, dry_run=self.dry_run,
            tags=dict(tags or {}))
        self._call("ConfigureStack", request)

    def configure(self, config: Optional[Mapping[str, Any]] = None) -> None:
        """The engine's reconciliation: each policy's default level and schema defaults, then `config` on top
        (a policy name -> level string or {"enforcementLevel": ..., <property>: ...}; "all" sets every level)."""
        reconciled = {}
        for policy in self.policies:
            properties = {k: v["default"] for k, v in policy.config_schema.get("properties", {}).items()
                          if isinstance(v, dict) and "default" in v}
            reconciled[policy.name] = [policy.level, properties]
        config = dict(config or {})
        if isinstance(config.get("all"), str):
            for entry in reconciled.values():
                entry[0] = config["all"]
        for name, given in config.items():
            if name == "all":
                continue
            if name not in reconciled:
                raise ValueError(f"the pack has no policy {name!r}")
            if isinstance(given, str):
                reconciled[name][0] = given
                continue
            given = dict(given)
            if "enforcementLevel" in given:
                reconciled[name][0] = given.pop("enforcementLevel")
            reconciled[name][1].update(given)
        request = analyzer_pb2.ConfigureAnalyzerRequest()
        for name, (level, properties) in reconciled.items():
            entry = request.policyConfig[name]
            entry.enforcementLevel = _LEVEL_VALUES[level]
            entry.properties.update(_wire(properties, name))
        self._call("Configure", request)

    def analyze(self, resource: Resource) -> list[Diagnostic]:
        request = analyzer_pb2.AnalyzeRequest(
            urn=resource.urn, type=resource.type, name=resource.name, properties=to_struct(resource.properties),
            options=analyzer_pb2.AnalyzerResourceOptions(parent=resource.parent))
        return self._diagnostics(self._call("Analyze", request), resource.name)

    def analyze_stack(self, resources: Sequence[Resource]) -> list[Diagnostic]:
        request = analyzer_pb2.AnalyzeStackRequest()
        for resource in resources:
            item = request.resources.add(
                urn=resource.urn, type=resource.type, name=resource.name, parent=resource.parent,
                properties=to_struct(resource.properties), dependencies=list(resource.dependencies),
                options=analyzer_pb2.AnalyzerResourceOptions(parent=resource.parent))
            for key, urns in resource.property_dependencies.items():
                item.propertyDependencies[key].urns.extend(urns)
        return self._diagnostics(self._call("AnalyzeStack", request), "")

    def analyze_all(self, resources: Sequence[Resource]) -> list[Diagnostic]:
        """What a preview does: Analyze for each custom resource, then AnalyzeStack over all of them."""
        found = []
        for resource in resources:
            if resource.custom:
                found += self.analyze(resource)
        return found + self.analyze_stack(resources)

    @staticmethod
    def _diagnostics(response: Any, resource: str) -> list[Diagnostic]:
        return [Diagnostic(d.policyName, _LEVELS[d.enforcementLevel], d.message, d.urn, d.description, resource)
                for d in response.diagnostics]

"""What every policy of the pack shares: plain property values, unknowns, config defaults, findings.

Unknown values: during a preview the engine sends properties it cannot know yet (image digests, generated
names) as sentinel strings. pulumi-policy wraps the properties in a proxy that raises `UnknownValueError`
when a check touches one, and turns that exception into an *advisory* "can't run policy ... during preview"
diagnostic instead of a violation. The policies here take the properties as plain data (`plain`, with the
sentinels replaced by `UNKNOWN`) so that they can decide everything that is known, report that as
violations, and only then raise `Undecided` (an `UnknownValueError`) with a message of their own for the
rest: the same advisory path, never a mandatory violation on an unknown value.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.deserialize import serialize_properties
from pulumi_policy.proxy import (
    UNKNOWN_ARCHIVE_VALUE,
    UNKNOWN_ARRAY_VALUE,
    UNKNOWN_ASSET_VALUE,
    UNKNOWN_BOOLEAN_VALUE,
    UNKNOWN_NUMBER_VALUE,
    UNKNOWN_OBJECT_VALUE,
    UNKNOWN_STRING_VALUE,
    UnknownValueError,
)

_SENTINELS = frozenset({UNKNOWN_ARCHIVE_VALUE, UNKNOWN_ARRAY_VALUE, UNKNOWN_ASSET_VALUE, UNKNOWN_BOOLEAN_VALUE,
                        UNKNOWN_NUMBER_VALUE, UNKNOWN_OBJECT_VALUE, UNKNOWN_STRING_VALUE})
LATER = "it is checked again on `pulumi up`, when the value is known"


class _Unknown:
    """A value the engine does not know yet. Never equal to, nor an instance of, any real value."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<unknown>"


UNKNOWN = _Unknown()


def is_unknown(value: object) -> bool:
    return value is UNKNOWN


def plain(props: Mapping[str, Any]) -> dict:
    """The proxied properties pulumi-policy hands a policy, as plain dicts and lists; unknowns are UNKNOWN."""
    return _replace_sentinels(serialize_properties(props))


def _replace_sentinels(value: Any) -> Any:
    if isinstance(value, str):
        return UNKNOWN if value in _SENTINELS else value
    if isinstance(value, Mapping):
        return {k: _replace_sentinels(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace_sentinels(v) for v in value]
    return value


def get(value: Any, *path: str | int) -> Any:
    """value[path[0]][path[1]]...: None when a step is missing or of the wrong shape, UNKNOWN when unknown."""
    for step in path:
        if value is UNKNOWN:
            return UNKNOWN
        if isinstance(step, int):
            value = value[step] if isinstance(value, list) and -len(value) <= step < len(value) else None
        else:
            value = value.get(step) if isinstance(value, dict) else None
        if value is None:
            return None
    return value


def as_dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list:
    return value if isinstance(value, list) else []


def whole_number(value: Any) -> Optional[int]:
    """The engine sends every number as a float; None for anything that is not a whole number."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


# ---- resources ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Resource:
    type: str
    name: str  # the Pulumi resource name
    urn: str
    props: dict  # plain, with UNKNOWN for unknowns
    parent: Optional[str] = None  # URN
    dependencies: tuple[str, ...] = ()
    property_dependencies: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return self.type.rsplit(":", 1)[-1]

    @property
    def is_kubernetes(self) -> bool:
        return self.type.startswith("kubernetes:")

    @property
    def label(self) -> str:
        """How messages name the resource: `Deployment models/diabetes (Pulumi resource diabetes-model)`."""
        if self.is_kubernetes:
            name, namespace = get(self.props, "metadata", "name"), get(self.props, "metadata", "namespace")
            if isinstance(name, str):
                shown = f"{namespace}/{name}" if isinstance(namespace, str) else name
                return f"{self.kind} {shown} (Pulumi resource {self.name})"
        return f"{self.kind} {self.name}"


# ---- findings -------------------------------------------------------------------------------------------


class Undecided(UnknownValueError):
    """Raised after a policy reported what it could decide; pulumi-policy makes it an advisory diagnostic."""

    def __init__(self, message: str):
        super().__init__(UNKNOWN_STRING_VALUE, [])
        self.message = message


class Findings:
    """What a check found: violations (reported at the policy's level) and what it could not decide."""

    def __init__(self) -> None:
        self.violations: list[tuple[str, Optional[str]]] = []
        self.undecided: list[str] = []

    def violation(self, message: str, urn: Optional[str] = None) -> None:
        self.violations.append((message, urn))

    def cannot_decide(self, message: str) -> None:
        self.undecided.append(message)

    def report(self, report_violation: ReportViolation) -> None:
        for message, urn in self.violations:
            report_violation(message, urn)
        if self.undecided:
            raise Undecided(" | ".join(self.undecided))


# ---- policies -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Setting:
    """One property of a policy's config: its JSON schema (with the default) and the default itself."""

    name: str
    schema: dict
    default: Any = None


def strings(name: str, description: str, default: Sequence[str] = ()) -> Setting:
    """A list-of-strings setting."""
    return Setting(name, {"type": "array", "items": {"type": "string"}, "description": description}, list(default))


def _schema(settings: Sequence[Setting]) -> Optional[PolicyConfigSchema]:
    if not settings:
        return None
    return PolicyConfigSchema(properties={s.name: dict(s.schema, default=s.default) if s.default is not None
                                          else dict(s.schema) for s in settings})


def _config(settings: Sequence[Setting], given: Mapping[str, Any]) -> dict:
    config = {s.name: s.default for s in settings}
    config.update({k: v for k, v in (given or {}).items() if k in config})
    return config


ResourceCheck = Callable[[Resource, dict, Findings], None]
StackCheck = Callable[[list[Resource], dict, Findings], None]


def resource_policy(name: str, description: str, applies: Callable[[str], bool], check: ResourceCheck,
                    settings: Sequence[Setting] = (), enforcement: Optional[EnforcementLevel] = None,
                    remediation: Optional[str] = None) -> ResourceValidationPolicy:
    def resource(args: ResourceValidationArgs) -> Optional[Resource]:
        if not applies(args.resource_type):
            return None
        return Resource(args.resource_type, args.name, args.urn, plain(args.props), args.opts.parent)

    return _policy(ResourceValidationPolicy, name, description, resource, check, settings, enforcement, remediation)


def stack_policy(name: str, description: str, check: StackCheck, settings: Sequence[Setting] = (),
                 enforcement: Optional[EnforcementLevel] = None,
                 remediation: Optional[str] = None) -> StackValidationPolicy:
    def resources(args: StackValidationArgs) -> list[Resource]:
        return [
            Resource(r.resource_type, r.name, r.urn, plain(r.props),
                     r.opts.parent or (r.parent.urn if r.parent else None),
                     tuple(d.urn for d in r.dependencies),
                     {k: tuple(d.urn for d in v) for k, v in r.property_dependencies.items()})
            for r in args.resources
        ]

    return _policy(StackValidationPolicy, name, description, resources, check, settings, enforcement, remediation)


def _policy(kind: type, name: str, description: str, subject: Callable[[Any], Any], check: Callable,
            settings: Sequence[Setting], enforcement: Optional[EnforcementLevel], remediation: Optional[str]):
    """A pulumi-policy policy of `kind` whose validate runs `check` on `subject(args)` (None: not for this
    policy) with the config filled in from the settings' defaults, then reports what it found."""
    def validate(args: Any, report_violation: ReportViolation) -> None:
        found = subject(args)
        if found is None:
            return
        findings = Findings()
        check(found, _config(settings, args.get_config()), findings)
        findings.report(report_violation)

    return kind(name=name, description=description, validate=validate, enforcement_level=enforcement,
                config_schema=_schema(settings), remediation_steps=remediation)


def of_types(*types: str) -> Callable[[str], bool]:
    wanted = frozenset(types)
    return lambda resource_type: resource_type in wanted


def listed(items: Iterable[str]) -> str:
    items = list(items)
    return ", ".join(items) if items else "none"

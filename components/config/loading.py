"""Reading a stack config: from `Pulumi.<stack>.yaml` (no Pulumi needed) or from `pulumi.Config()`, with
errors as `key.path: rule` lines in the camelCase users wrote."""
from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Callable, Mapping

import yaml
from pydantic import BaseModel, ValidationError

from components.config_base import ConfigError
from components.config.stack import StackConfig

PROJECT = "aks-serving"
SECTIONS = ("workspace", "cluster", "router", "images", "environments", "services", "endpoints")
# Values that must only ever be set with `pulumi config set --secret` (`*`: any service or endpoint name).
SECRET_PATHS = ("router.tls.key", "services.*.keys.primaryKey", "services.*.keys.secondaryKey",
                "endpoints.*.keys.primaryKey", "endpoints.*.keys.secondaryKey")


def parse_stack_config(raw: Mapping[str, Any], unset_secrets: frozenset[str] = frozenset()) -> StackConfig:
    """Validate a config mapping (sections as keys), raising ConfigError with every problem found."""
    unknown = [k for k in raw if k not in SECTIONS]
    if unknown:
        raise ConfigError([_unknown_key_message(k, SECTIONS) for k in unknown])
    try:
        return StackConfig.model_validate({**raw, "unset_secrets": unset_secrets})
    except ValidationError as err:
        raise ConfigError([_problem(e) for e in err.errors()]) from None


def load_stack_file(path: str | Path) -> StackConfig:
    """Load `Pulumi.<stack>.yaml`; `secure:` values cannot be decrypted here and count as unset."""
    return load_stack_text(Path(path).read_text())


def load_stack_text(text: str) -> StackConfig:
    """`load_stack_file` of a stack file's text (one not written yet, say)."""
    raw, unset = _project_sections(text)
    # `secure:` values were taken out, so whatever is left at a secret path is plain text.
    _refuse_plain_secrets(list(secret_values(raw)))
    return parse_stack_config(raw, frozenset(unset))


def load_pulumi_config(config: Any, is_secret: Callable[[str], bool], stack_file: Path | None = None) -> StackConfig:
    """Load from a `pulumi.Config()` (duck-typed, so this module stays free of Pulumi).

    `is_secret(section)` tells whether Pulumi holds a section encrypted; a secret value in a plain
    section would sit in the stack file in clear text, so it is refused. Pulumi marks a whole section
    secret when any value in it is, and that is all it tells a program: one secret key in `services`
    would let another service's plain-text key through. So the stack file itself (`stack_file`, when it
    exists) is read too, where each value shows whether it is `secure:`.
    """
    raw = {s: v for s in SECTIONS if (v := config.get_object(s)) is not None}
    plain = [p for p in secret_values(raw) if not is_secret(p.split(".")[0])]
    if stack_file is not None and stack_file.is_file():
        plain += [p for p in secret_values(_project_sections(stack_file.read_text())[0]) if p not in plain]
    _refuse_plain_secrets(plain)
    return parse_stack_config(raw)


def _project_sections(text: str) -> tuple[dict, set[str]]:
    """The project's sections of a stack file's text, `secure:` values taken out (their paths returned apart)."""
    document = yaml.safe_load(text) or {}
    prefix = f"{PROJECT}:"
    raw, unset = {}, set()
    for key, value in (document.get("config") or {}).items():
        if key.startswith(prefix):
            section = key[len(prefix):]
            raw[section] = _strip_secure(value, section, unset)
    return raw, unset


def secret_values(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Every value set at one of SECRET_PATHS, by its concrete path (`services.diabetes.keys.primaryKey`)."""
    found = {}
    for pattern in SECRET_PATHS:
        found.update(_at_path(raw, pattern.split("."), ""))
    return found


def _at_path(value: Any, parts: list[str], prefix: str) -> dict[str, Any]:
    if not parts:
        return {prefix: value} if value is not None else {}
    if not isinstance(value, Mapping):
        return {}
    head, rest = parts[0], parts[1:]
    names = [str(k) for k in value] if head == "*" else [head]
    found = {}
    for name in names:
        found.update(_at_path(value.get(name), rest, f"{prefix}.{name}".lstrip(".")))
    return found


def _refuse_plain_secrets(paths: list[str]) -> None:
    if paths:
        raise ConfigError([f"{p}: a secret in plain text; set it with `pulumi config set --secret --path {p} ...`"
                           for p in sorted(paths)])


def _strip_secure(value: Any, path: str, unset: set[str]) -> Any:
    if isinstance(value, dict):
        if set(value) == {"secure"}:
            unset.add(path)
            return None
        return {k: _strip_secure(v, f"{path}.{k}", unset) for k, v in value.items()}
    if isinstance(value, list):
        return [_strip_secure(v, f"{path}[{i}]", unset) for i, v in enumerate(value)]
    return value


def _problem(error: dict) -> str:
    """One pydantic error as `key.path: rule`, with the key path users wrote (camelCase)."""
    path = ".".join(_loc_part(p) for p in error["loc"]).replace(".[", "[")
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        return _unknown_key_message(path, ())
    if error["type"] == "missing":
        return f"{path}: required, not set"
    # Model validators raise "key: rule" relative to the model they check; join it to the path.
    head, sep, rest = message.partition(": ")
    if sep and head and " " not in head:
        return f"{path}.{head}: {rest}".lstrip(".").replace(".[", "[")
    return f"{path}: {message}" if path else message


def _loc_part(part: Any) -> str:
    return f"[{part}]" if isinstance(part, int) else str(part)


def _unknown_key_message(path: str, allowed: tuple[str, ...]) -> str:
    key = path.rsplit(".", 1)[-1]
    hint = difflib.get_close_matches(key, allowed or _ALL_KEYS, n=1)
    return f"{path}: unknown key" + (f"; did you mean {hint[0]}?" if hint else "")


def _collect_keys(model: type[BaseModel], seen: set[str]) -> set[str]:
    for name, field in model.model_fields.items():
        seen.add(field.alias or name)
        for arg in (field.annotation, *getattr(field.annotation, "__args__", ())):
            for inner in (arg, *getattr(arg, "__args__", ())):
                if isinstance(inner, type) and issubclass(inner, BaseModel) and inner is not model:
                    _collect_keys(inner, seen)
    return seen


_ALL_KEYS = tuple(sorted(_collect_keys(StackConfig, set())))

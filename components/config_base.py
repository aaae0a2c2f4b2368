"""What every stack config section is built on: camelCase keys as users write them, unknown keys refused,
values frozen once read, and rule errors that name the key."""
from __future__ import annotations

from typing import Optional

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class ConfigModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


class ConfigError(ValueError):
    """Every problem found in a stack config, one `key.path: rule` line each."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid stack config:\n  " + "\n  ".join(problems))


def check_named(key: str, check, value: Optional[str]) -> None:
    """Run a `policies.rules.naming` check; its rule sentence becomes `key: rule`."""
    if value is not None and (problem := check(value)):
        raise ValueError(f"{key}: {problem}")


def region_name(value):
    """An Azure region as ARM names it: `West Europe` (the portal's display name) is `westeurope`, the form
    resource names and the regional APIs expect."""
    return value.replace(" ", "").lower() if isinstance(value, str) else value

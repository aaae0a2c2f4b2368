"""A v1 config file as `az ml` read it (JSON or YAML), and the check v1 never made: every key is one v1 read.

v1 read its files with `dict.get`, so a misspelled key was silently a default. Here an unknown key is an
error naming the file, the key path and the nearest key v1 knew.
"""
from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml


class V1ImportError(ValueError):
    """Every problem found in the v1 inputs, one `file: key.path: rule` line each."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("cannot bring the v1 deployment over:\n  " + "\n  ".join(problems))


def read_document(path: Path) -> dict[str, Any]:
    """A JSON or YAML mapping (az ml's `file_stream_to_object` took either, whatever the extension)."""
    try:
        text = path.read_text(encoding="utf-8-sig")  # PowerShell wrote v1's JSON files with a byte order mark
    except OSError as err:
        raise V1ImportError([f"{path}: cannot read ({err.strerror})"]) from None
    try:
        document = json.loads(text)
    except ValueError:
        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise V1ImportError([f"{path}: neither JSON nor YAML ({_where(err)})"]) from None
    if not isinstance(document, dict):
        raise V1ImportError([f"{path}: must be a mapping of keys to values"])
    return document


def _where(err: yaml.YAMLError) -> str:
    """Where and why the YAML parser stopped, never the text there: PyYAML's own message quotes the line,
    and in a deploymentconfig that line can hold a service key (the message goes to the terminal)."""
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or type(err).__name__
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}" if mark is not None else problem


def unknown_keys(section: Mapping[str, Any], known: Iterable[str], file: Path, prefix: str = "",
                 aliases: Mapping[str, str] | None = None) -> list[str]:
    """One line per key v1 did not read in `section`, with a did-you-mean from `aliases` (names people wrote
    for a key, such as the SDK's parameter names) or the nearest of `known`."""
    known = list(known)
    problems = []
    for key in section:
        if key in known:
            continue
        hint = [aliases[key]] if aliases and key in aliases else []
        hint = hint or difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
        if not hint:  # case slips (`autoscaler`, `MemoryInGB`) are the commonest v1 typos
            hint = [k for k in known if k.lower() == str(key).lower()][:1]
        problems.append(f"{file}: {prefix}{key}: unknown key (v1 did not read it)"
                        + (f"; did you mean {prefix}{hint[0]}?" if hint else f"; known: {', '.join(known)}"))
    return problems


def section(document: Mapping[str, Any], key: str, file: Path, prefix: str = "") -> dict[str, Any]:
    """A nested mapping such as `autoScaler`; unset or null is empty, anything else is an error."""
    value = document.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise V1ImportError([f"{file}: {prefix}{key}: must be a mapping, not {type(value).__name__}"])
    return value

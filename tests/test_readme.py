"""The README's config reference lists every key of components/config/ with the default it has."""
import re
import typing
from pathlib import Path

from pydantic import BaseModel

from components.config import DeploymentSpec, Endpoint, StackConfig

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
ROWS = {m.group(1): m.group(2).strip() for m in re.finditer(r"^\| `([^`]+)`[^|]* \| ([^|]*) \|", README, re.M)}
# Endpoint versions repeat every deployment key of a service; the README says so in one row.
VERSION = "endpoints.<name>.versions.<version>."
GROUPED = {f.alias for f in DeploymentSpec.model_fields.values()}


def grouped(path: str) -> bool:
    return path.startswith(VERSION) and path[len(VERSION):].split(".")[0].removesuffix("[]") in GROUPED


def key_paths(model: type[BaseModel], prefix: str = ""):
    for name, field in model.model_fields.items():
        if name == "unset_secrets":
            continue
        path = f"{prefix}{field.alias or name}"
        args = typing.get_args(field.annotation)
        nested = [a for a in (field.annotation, *args) if isinstance(a, type) and issubclass(a, BaseModel)]
        origin = typing.get_origin(field.annotation)
        if origin is dict and nested:  # a map of sections; a map of text (tags) is one key
            item = "<version>" if model is Endpoint else "<name>"
            yield from key_paths(nested[0], f"{path}.{item}.")
        elif origin is list and nested:
            yield from key_paths(nested[0], f"{path}[].")
        elif nested:
            yield from key_paths(nested[0], f"{path}.")
        else:
            yield path, field.default


def test_every_config_key_is_in_the_readme():
    missing = [p for p, _ in key_paths(StackConfig) if p not in ROWS and not grouped(p)
               and not p.startswith(("endpoints.<name>.authEnabled", "endpoints.<name>.tokenAuthEnabled",
                                     "endpoints.<name>.keys.", "endpoints.<name>.tokenAuth.",
                                     "endpoints.<name>.description",
                                     "endpoints.<name>.tags", "endpoints.<name>.properties"))]
    assert missing == []


def test_readme_defaults_match_the_model():
    wrong = []
    for path, default in key_paths(StackConfig):
        if path in ROWS and isinstance(default, (bool, int, float, str)):
            shown = str(default).lower() if isinstance(default, bool) else f"{default:g}" if isinstance(default, float) else str(default)
            if shown not in ROWS[path].replace(",", ""):
                wrong.append((path, default, ROWS[path]))
    assert wrong == []

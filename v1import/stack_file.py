"""The stack file: written new, or merged into an existing one without touching the user's keys, with a
YAML comment per value saying where it came from; never written unless `load_stack_text` accepts it and
every file it names exists."""
from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

import yaml

from components.config import ConfigError, config_warnings, load_stack_text
from components.config.files import missing_files
from v1import.documents import V1ImportError
from v1import.report import Report
from v1import.tree import Sourced, source_of

PREFIX = "aks-serving:"
ORDER = ("workspace", "cluster", "router", "environments", "services", "endpoints")
# Sections that hold named entries: a merge adds the import's entries beside the user's.
NAMED = ("environments", "services", "endpoints")


def render_new(sections: dict[str, dict], header: list[str], location: str) -> str:
    lines = [f"# {line}" for line in header] + ["config:", f"  azure-native:location: {_scalar(location)}"]
    for name in ORDER:
        if name in sections:
            lines += [f"  {PREFIX}{name}:"] + emit(sections[name], 4)
    return "\n".join(lines) + "\n"


def merge_into(text: str, sections: dict[str, dict], file: Path, report: Report) -> str:
    """`text` with the import's sections added: new sections at the end of `config:`, new entries at the end of
    an existing environments/services/endpoints; the user's workspace, cluster and router are kept."""
    document = yaml.safe_load(text) or {}
    config = document.get("config") or {}
    clashes = [f"{file}: {name}.{entry}: already defined; give the imported one another name (--service) or "
               "merge into another stack" for name in NAMED if name in sections
               for entry in sorted(set(config.get(f"{PREFIX}{name}") or {}) & set(sections[name]))]
    if clashes:
        raise V1ImportError(clashes)
    lines = text.splitlines()
    if any(line.startswith("config:") and line.split("#")[0].strip() != "config:" for line in lines):
        raise V1ImportError([f"{file}: config: written in flow style ({{...}}); write it as a block mapping to merge"])
    if not any(line.split("#")[0].rstrip() == "config:" for line in lines):
        lines.append("config:")
    for name in ORDER:
        if name not in sections:
            continue
        key = f"{PREFIX}{name}"
        start = _config_line(lines)
        indent = _child_indent(lines, start, 2)  # the file's own indentation, kept
        if key not in config:
            new = [f"{' ' * indent}{key}:"] + emit(sections[name], indent + 2)
            lines = _insert(lines, _block_end(lines, start, 0), new)
        elif name in NAMED:
            lines = _merge_named(lines, key, indent, sections[name], file)
        else:
            report.note(f"{file.name}: {key}", f"kept as it is; the import's {name} settings were not merged (write "
                                               "them to a new file with --out to compare)")
    return "\n".join(lines) + "\n"


def validate(text: str, root: Path, written_later: set[Path], pending_secrets: tuple[str, ...] = (),
             sections: dict | None = None) -> list[str]:
    """The stack as `make run` and `pulumi up` would load it: ConfigError lines, missing files; or warnings.

    `pending_secrets` (`router.tls.key`) are required values only the printed `pulumi config set --secret`
    commands set; they are checked as the `secure:` values those commands leave in the file. A problem with a
    value the import set says which v1 file and key it came from (`sections`).
    """
    if pending_secrets:
        text = _with_secure_values(text, pending_secrets)
    try:
        cfg = load_stack_text(text)
    except yaml.YAMLError as err:
        raise V1ImportError([f"the stack would not be YAML: {err}"]) from None
    except ConfigError as err:
        raise V1ImportError([_explained(p, sections or {}) for p in err.problems]) from None
    later = {Path(os.path.relpath(p, root)).as_posix() for p in written_later}
    missing = [p for p in missing_files(cfg, root) if not any(p.endswith(f"no file {name}") for name in later)]
    if missing:
        raise V1ImportError([f"the stack would not load: {p}" for p in missing])
    return config_warnings(cfg)


def _explained(problem: str, sections: dict) -> str:
    source = source_of(sections, problem.split(": ", 1)[0])
    return f"the stack would not load: {problem}" + (f" (from {source})" if source else "")


def _with_secure_values(text: str, paths: tuple[str, ...]) -> str:
    document = yaml.safe_load(text)
    for path in paths:
        section, *parts = path.split(".")
        node = document["config"].setdefault(f"{PREFIX}{section}", {})
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = {"secure": "v1:set-by-the-printed-command"}
    return yaml.safe_dump(document, sort_keys=False)


def write(path: Path, text: str, files: dict[Path, str]) -> None:
    """Write the import's own files, then the stack file in one step (a reader never sees half of it)."""
    for file, content in files.items():
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(content)
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", delete=False) as tmp:
        tmp.write(text)
    os.chmod(tmp.name, mode)
    os.replace(tmp.name, path)


# ---------------------------------------------------------------- YAML with a comment per value


def emit(tree: dict, indent: int) -> list[str]:
    pad, lines = " " * indent, []
    for key, node in tree.items():
        if isinstance(node, dict):
            lines += [f"{pad}{_key(key)}:"] + emit(node, indent + 2)
            continue
        value, comment = node.value, _comment(node.source)
        if isinstance(value, list):
            lines.append(f"{pad}{_key(key)}:{comment}")
            for item in value:
                item_value, item_comment = (item.value, _comment(item.source)) if isinstance(item, Sourced) else (item, "")
                lines.append(f"{pad}  - {_flow(item_value)}{item_comment}")
        elif isinstance(value, dict):
            lines.append(f"{pad}{_key(key)}:{comment}")
            lines += [f"{pad}  {_key(k)}: {_scalar(v)}" for k, v in value.items()]
        elif isinstance(value, str) and "\n" in value:
            lines.append(f"{pad}{_key(key)}: |{'' if value.endswith(chr(10)) else '-'}{comment}")
            lines += [f"{pad}  {line}" if line else "" for line in value.splitlines()]
        else:
            lines.append(f"{pad}{_key(key)}: {_scalar(value)}{comment}")
    return lines


def _comment(source: Any) -> str:
    return f"  # from {source}" if source else ""


def _key(key: str) -> str:
    return _scalar(str(key))


def _scalar(value: Any) -> str:
    return yaml.safe_dump([value], default_flow_style=True, width=1 << 20).strip()[1:-1]


def _flow(value: Any) -> str:
    if isinstance(value, dict):
        return yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=1 << 20).strip()
    return _scalar(value)


# ---------------------------------------------------------------- merging by lines, so the user's comments stay


def _config_line(lines: list[str]) -> int:
    return next(i for i, line in enumerate(lines) if line.split("#")[0].rstrip() == "config:")


def _child_indent(lines: list[str], start: int, default: int) -> int:
    """The indentation of the first entry of the block opened at `start`."""
    end = _block_end(lines, start, len(lines[start]) - len(lines[start].lstrip()))
    children = [line for line in lines[start + 1:end] if line.strip() and not line.strip().startswith("#")]
    return len(children[0]) - len(children[0].lstrip()) if children else default


def _block_end(lines: list[str], start: int, indent: int) -> int:
    """The index after the last line of the block opened at `start` (lines indented more than `indent`)."""
    end = start + 1
    for i in range(start + 1, len(lines)):
        stripped = lines[i].strip()
        if not stripped or stripped.startswith("#"):
            continue
        if len(lines[i]) - len(lines[i].lstrip()) <= indent:
            break
        end = i + 1
    return end


def _insert(lines: list[str], at: int, new: list[str]) -> list[str]:
    return lines[:at] + new + lines[at:]


def _merge_named(lines: list[str], key: str, indent: int, tree: dict, file: Path) -> list[str]:
    pattern = re.compile(rf"^ {{{indent}}}{re.escape(key)}:\s*(#.*)?$")
    header = next((i for i, line in enumerate(lines) if pattern.match(line)), None)
    if header is None:
        raise V1ImportError([f"{file}: {key}: written in flow style ({{...}}); write it as a block mapping to merge"])
    end = _block_end(lines, header, indent)
    return _insert(lines, end, emit(tree, _child_indent(lines, header, indent + 2)))

"""Stack config values with where each came from (`deploymentconfig.json: autoScaler.minReplicas`), as a
tree of sections the stack file writer turns into YAML with a comment per value."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional


@dataclass(frozen=True)
class Sourced:
    value: Any
    source: Optional[str] = None  # shown as the value's YAML comment


def put(tree: dict, path: str, value: Any, source: Optional[str]) -> None:
    """Set `a.b.c` in `tree`, making the mappings on the way; None values are left out."""
    if value is None:
        return
    *parents, leaf = path.split(".")
    for part in parents:
        tree = tree.setdefault(part, {})
    tree[leaf] = Sourced(value, source)


def plain(tree: Any) -> Any:
    """The values alone, as the stack config loader sees them."""
    if isinstance(tree, Sourced):
        return plain(tree.value)
    if isinstance(tree, dict):
        return {k: plain(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [plain(v) for v in tree]
    return tree


def source_of(sections: dict, path: str) -> Optional[str]:
    """Where the value at a stack key path (`services.x.cpuCoresLimit`) came from, if the import set it."""
    node: Any = sections
    for part in path.split("."):
        if isinstance(node, Sourced):
            node = node.value
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node.source if isinstance(node, Sourced) else None

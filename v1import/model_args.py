"""`--model name:version=path`: v1's `az ml model deploy -m name:version`, with the local file or folder the
registered model was made from (`az ml model download -i name:version -t <folder>` fetches it)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from v1import.documents import V1ImportError

_ARG = re.compile(r"^(?P<name>[^:=]+):(?P<version>\d+)=(?P<path>.+)$")


@dataclass(frozen=True)
class ModelArg:
    name: str
    version: int
    path: Path  # absolute
    given: str  # as typed, for the stack file's comment


def parse_model(text: str) -> ModelArg:
    match = _ARG.match(text)
    if match is None:
        hint = (f"; give the local file or folder: --model {text}=path/to/model"
                if re.match(r"^[^:=]+:\d+$", text) else "")
        raise V1ImportError([f"--model {text}: must be name:version=path (v1's -m name:version and where the "
                             f"model's file or folder is here){hint}"])
    path = Path(match["path"]).resolve()
    if not path.exists():
        raise V1ImportError([f"--model {text}: no file or folder {match['path']}"])
    return ModelArg(match["name"], int(match["version"]), path, text)

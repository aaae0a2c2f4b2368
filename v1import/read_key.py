"""`python -m v1import.read_key FILE KEY.PATH | pulumi config set --secret --path ...`: one value of a v1
file (a service key from deploymentconfig.json) onto a pipe, so it reaches Pulumi's encrypted config
without being printed, copied into another file or put on a command line (where `ps` shows it)."""
from __future__ import annotations

import sys
from pathlib import Path

from v1import.documents import V1ImportError, read_document


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m v1import.read_key FILE KEY.PATH | pulumi config set --secret --path ...",
              file=sys.stderr)
        return 2
    if sys.stdout.isatty():
        print("read_key: refusing to print a secret to a terminal; pipe it into `pulumi config set --secret`",
              file=sys.stderr)
        return 2
    path, key = Path(args[0]), args[1]
    try:
        value = read_document(path)
    except V1ImportError as err:
        print(err, file=sys.stderr)
        return 1
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            print(f"{path}: {key}: not set", file=sys.stderr)
            return 1
        value = value[part]
    sys.stdout.write(str(value))  # no newline: Pulumi keeps what it reads from stdin as it is
    return 0


if __name__ == "__main__":
    sys.exit(main())

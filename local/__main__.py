"""`python -m local run --stack dev`: a stack's models on this machine (see README).

`make token`, `make status`, `make logs` and `make keys` operate the running stack through
`python -m aks_serving ... --local`."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from local.deployment import DeploymentError, LocalDeployment


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local", description=__doc__)
    parser.add_argument("command", choices=("run",))
    parser.add_argument("--stack", default="dev")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT") or 8080))
    parser.add_argument("--admin-port", type=int, default=int(os.environ.get("ADMIN_PORT") or 8081))
    parser.add_argument("--stack-file", type=Path, help="default: Pulumi.<stack>.yaml")
    parser.add_argument("--state-dir", type=Path, help="keys, router config, logs; default: .serving/<stack>")
    args = parser.parse_args(argv)
    deployment = LocalDeployment(args.stack, port=args.port, admin_port=args.admin_port,
                                 stack_file=args.stack_file, state_dir=args.state_dir,
                                 say=lambda line: print(line, flush=True))
    try:
        return deployment.serve()
    except DeploymentError as err:
        print(f"{args.stack_file or f'Pulumi.{args.stack}.yaml'}: cannot start:\n  " + "\n  ".join(err.problems), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

"""`python -m local run|token|status --stack dev`: a stack's models on this machine (see README)."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from local.deployment import DeploymentError, LocalDeployment


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local", description=__doc__)
    parser.add_argument("command", choices=("run", "token", "status"))
    parser.add_argument("--stack", default="dev")
    parser.add_argument("--service", help="token: the token-auth service or endpoint")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT") or 8080))
    parser.add_argument("--admin-port", type=int, default=int(os.environ.get("ADMIN_PORT") or 8081))
    parser.add_argument("--once", action="store_true", help="status: print once instead of refreshing")
    parser.add_argument("--stack-file", type=Path, help="default: Pulumi.<stack>.yaml")
    parser.add_argument("--state-dir", type=Path, help="keys, router config, logs; default: .serving/<stack>")
    args = parser.parse_args(argv)
    deployment = LocalDeployment(args.stack, port=args.port, admin_port=args.admin_port,
                                 stack_file=args.stack_file, state_dir=args.state_dir,
                                 say=lambda line: print(line, flush=True))
    try:
        if args.command == "run":
            return deployment.serve()
        if args.command == "token":
            return _token(deployment, args.service)
        from local.status import watch
        return watch(deployment, once=args.once)
    except DeploymentError as err:
        print(f"{args.stack_file or f'Pulumi.{args.stack}.yaml'}: cannot start:\n  " + "\n  ".join(err.problems), file=sys.stderr)
        return 1


def _token(deployment: LocalDeployment, name: str | None) -> int:
    from router.auth import mint_token
    from router.settings import RouterConfig

    document = deployment.prepare(build=False)
    target = document["services"].get(name) or document["endpoints"].get(name)
    if target is None or target["auth"]["mode"] != "token":
        token_users = [n for kind in ("services", "endpoints") for n, e in document[kind].items()
                       if e["auth"]["mode"] == "token" and not (kind == "services" and n in _version_services(document))]
        print(f"SERVICE={name}: not a token-auth service or endpoint of {deployment.stack} "
              f"(these are: {', '.join(token_users) or 'none'})", file=sys.stderr)
        return 2
    settings = RouterConfig.model_validate(document)
    auth = (settings.services.get(name) or settings.endpoints[name]).auth.token
    if auth.discovery_url is not None:  # an OIDC issuer signs this service's tokens; nothing here can
        from router.auth import token_source
        print(f"SERVICE={name}: {token_source(auth)}", file=sys.stderr)
        return 2
    print(json.dumps(mint_token(auth, subject="local-user")))
    return 0


def _version_services(document: dict) -> set[str]:
    return {v["service"] for e in document["endpoints"].values() for v in e["versions"].values()}


if __name__ == "__main__":
    sys.exit(main())

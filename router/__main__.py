"""Command line: `serve`, `token` (mint a JWT for a service) and `replicas` (v1's sizing formula)."""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys

from pydantic import ValidationError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m router", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the router")
    serve.add_argument("--config", required=True, help="RouterConfig file (JSON or YAML)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--admin-host", default="127.0.0.1")
    serve.add_argument("--admin-port", type=int, default=8081)
    serve.add_argument("--log-level", default="INFO")

    token = commands.add_parser("token", help="mint a token for a service whose config names a signing key")
    token.add_argument("--config", required=True)
    token.add_argument("--service", required=True, help="service (or endpoint) name")
    token.add_argument("--subject", default="router-cli")

    replicas = commands.add_parser("replicas", help="replicas needed for a load (v1's sizing formula)")
    replicas.add_argument("--rps", type=float, required=True, help="requests per second")
    replicas.add_argument("--seconds", type=float, required=True, help="seconds per request")
    replicas.add_argument("--target", type=float, default=70, help="target utilization, percent")
    replicas.add_argument("--concurrency", type=int, default=1, help="concurrent requests per replica")

    args = parser.parse_args(argv)
    if args.command == "replicas":
        from .autoscaler import replicas_for_rps
        print(replicas_for_rps(args.rps, args.seconds, args.target, args.concurrency))
        return 0

    from .settings import load_config
    try:
        config = load_config(args.config)
    except (OSError, ValidationError, ValueError) as e:
        print(f"invalid router config {args.config}: {e}", file=sys.stderr)
        return 2
    if args.command == "token":
        return _token(config, args.service, args.subject)
    logging.basicConfig(level=args.log_level.upper(), format="%(message)s", stream=sys.stderr)
    from .server import serve as run_server
    _use_uvloop()
    asyncio.run(run_server(config, args.host, args.port, args.admin_host, args.admin_port))
    return 0


def _use_uvloop() -> None:
    # uvloop (libuv) roughly halves the event loop's cost per request; the router works without it.
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def _token(config, name: str, subject: str) -> int:
    from .auth import mint_token
    target = config.services.get(name) or config.endpoints.get(name)
    if target is None:
        print(f"no service or endpoint named {name!r}", file=sys.stderr)
        return 2
    if target.auth.mode == "token" and target.auth.token.discovery_url is not None:
        from .auth import token_source
        print(f"{name}: {token_source(target.auth.token)}", file=sys.stderr)
        return 2
    if target.auth.mode != "token" or target.auth.token.signing_key_file is None:
        print(f"{name!r} does not use token auth with a signingKeyFile", file=sys.stderr)
        return 2
    print(json.dumps(mint_token(target.auth.token, subject)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`token SERVICE`: a token for a token-auth service (v1's get_token()), signed as the router expects."""
from __future__ import annotations

import json

from aks_serving.errors import CommandError
from aks_serving.target import Target, auth_owner, owners_with_auth
from router.auth import token_source
from router.settings import TokenAuth


def add_parser(verbs, common) -> None:
    p = verbs.add_parser("token", parents=[common], help="a token for a token-auth service (v1: get_token)",
                         description='Print {"accessToken", "tokenType", "refreshAfter", "expiryOn"} for a '
                                     "token-auth service or endpoint; refreshAfter and expiryOn are Unix times.")
    p.add_argument("service", metavar="SERVICE", help="a service or an endpoint")
    p.set_defaults(run=run)


def run(target: Target, args) -> int:
    config = target.router_config()
    _, auth = auth_owner(config, args.service)
    if auth["mode"] != "token":
        users = owners_with_auth(config, "token")
        raise CommandError(f"{args.service} uses {auth['mode']} auth, not tokens "
                           f"(token auth: {', '.join(users) or 'none'})", 2)
    settings = auth["token"]
    if settings.get("discoveryUrl") or settings.get("jwksUrl"):
        # The router trusts an identity provider's tokens here, not ours: only that provider mints them.
        raise CommandError(f"{args.service}: {token_source(TokenAuth.model_validate(settings))}", 2)
    print(json.dumps(target.mint_token(args.service, settings)))
    return 0

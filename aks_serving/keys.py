"""`keys SERVICE` and `regen-key SERVICE primary|secondary` (v1's get_keys() and regen_key()).

A rotation replaces one key and leaves the other as it is, so clients on the other key never fail
(the router swaps its key set in one step as the Secret or key file changes: router/auth.py KeyAuth).
"""
from __future__ import annotations

import json
import secrets
import string
import sys

from aks_serving.errors import CommandError
from aks_serving.target import KEY_FIELDS, Target, auth_owner, owners_with_auth

# As components/keys.py makes them (pulumi-random, special=False): 32 of [A-Za-z0-9], about 190 bits.
KEY_LENGTH = 32
KEY_ALPHABET = string.ascii_letters + string.digits


def add_parsers(verbs, common) -> None:
    p = verbs.add_parser("keys", parents=[common], help="a service's primary and secondary key (v1: get_keys)",
                         description="Print a key-auth service's or endpoint's keys as JSON, or one key alone.")
    p.add_argument("service", metavar="SERVICE", help="a service or an endpoint")
    p.add_argument("--only", choices=tuple(KEY_FIELDS), help="print just this key, for a pipe")
    p.set_defaults(run=show_keys)
    p = verbs.add_parser("regen-key", parents=[common], help="replace one key; the other keeps working "
                                                              "(v1: regen_key)",
                         description="Replace the primary or the secondary key with a new random one. Clients "
                                     "using the other key see no failed request. Prints what to record so the "
                                     "next deployment keeps the new key.")
    p.add_argument("service", metavar="SERVICE", help="a service or an endpoint")
    p.add_argument("key", choices=tuple(KEY_FIELDS), help="which key to replace")
    p.set_defaults(run=regen_key)


def show_keys(target: Target, args) -> int:
    kind, auth = _key_auth(target, args.service)
    keys = target.read_keys(args.service, auth)
    if not args.only:
        print(json.dumps({f: keys.get(f) for f in KEY_FIELDS.values()}))
    elif sys.stdout.isatty():
        print(keys[KEY_FIELDS[args.only]])
    else:  # into a pipe (`| pulumi config set --secret ...`): the key alone, no newline to become part of it
        sys.stdout.write(keys[KEY_FIELDS[args.only]])
    return 0


def regen_key(target: Target, args) -> int:
    kind, auth = _key_auth(target, args.service)
    field = KEY_FIELDS[args.key]
    target.write_key(args.service, auth, field, new_key())
    # The key itself is not printed: `keys SERVICE --only ...` shows it when wanted.
    print(f"{args.service}: new {args.key} key in {target.label}; the {_other(args.key)} key is unchanged.")
    print("\n".join(target.keep_key_advice(args.service, kind, field)))
    return 0


def new_key() -> str:
    return "".join(secrets.choice(KEY_ALPHABET) for _ in range(KEY_LENGTH))


def _key_auth(target: Target, name: str) -> tuple[str, dict]:
    config = target.router_config()
    kind, auth = auth_owner(config, name)
    if auth["mode"] != "key":
        users = owners_with_auth(config, "key")
        raise CommandError(f"{name} uses {auth['mode']} auth, not keys (key auth: {', '.join(users) or 'none'})", 2)
    return kind, auth


def _other(key: str) -> str:
    return "secondary" if key == "primary" else "primary"

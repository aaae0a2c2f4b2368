"""python -m fetcher --account-url URL --container NAME --copy PREFIX=DEST [--copy PREFIX=DEST ...]"""
from __future__ import annotations

import argparse
import logging
import sys

from fetcher.fetch import ACCESS_WAIT_SECONDS, Copy, FetchError, fetch_when_allowed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fetcher", description=__doc__)
    parser.add_argument("--account-url", required=True, help="https://<account>.blob.core.windows.net")
    parser.add_argument("--container", required=True)
    parser.add_argument("--copy", action="append", required=True, type=Copy.parse, help="PREFIX=DESTINATION")
    parser.add_argument("--wait-for-access", type=float, default=ACCESS_WAIT_SECONDS, metavar="SECONDS",
                        help="how long to wait for the identity's access to propagate (default %(default)g)")
    parser.add_argument("--connection-string", help=argparse.SUPPRESS)  # tests against a storage emulator
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    container = _container(args)
    try:
        for copy in args.copy:
            fetch_when_allowed(container, copy, args.wait_for_access)
    except FetchError as err:
        logging.getLogger("fetcher").error("%s", err)
        return 1
    return 0


def _container(args):
    from azure.storage.blob import ContainerClient
    if args.connection_string:
        return ContainerClient.from_connection_string(args.connection_string, args.container)
    from azure.identity import DefaultAzureCredential
    # Only the workload identity path is wanted in a pod; excluding the others makes a misconfigured pod
    # fail with the workload identity's error instead of a confusing chain of fallbacks.
    credential = DefaultAzureCredential(exclude_managed_identity_credential=True, exclude_cli_credential=True,
                                        exclude_powershell_credential=True, exclude_developer_cli_credential=True,
                                        exclude_visual_studio_code_credential=True,
                                        exclude_shared_token_cache_credential=True,
                                        exclude_interactive_browser_credential=True)
    return ContainerClient(args.account_url, args.container, credential=credential)


if __name__ == "__main__":
    sys.exit(main())

"""python -m aks_serving VERB ...: operate a deployed stack, or the one `make run` serves, as Azure ML v1's
Webservice methods did (get_logs, get_keys, regen_key, get_token, and the state of every service).

The deployed stack is found through its Pulumi outputs (`pulumi stack output --json --show-secrets`, or
--outputs FILE) and reached through the Kubernetes API with the stack's kubeconfig; --local works on
the stack `make run` serves on this machine instead.

examples:
  python -m aks_serving status --stack prod
  python -m aks_serving logs sentiment-ab --version v2 --tail 50 --stack prod
  python -m aks_serving regen-key diabetes primary --stack prod
  python -m aks_serving token sentiment --local
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from aks_serving import keys, logs, status, token
from aks_serving.errors import CommandError

KUBELOGIN_MODES = ("azurecli", "workloadidentity", "spn", "msi", "devicecode")  # components/kubeconfig.py


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    where = common.add_argument_group("which stack")
    where.add_argument("--stack", help="the Pulumi stack (default: the selected one; with --local: dev)")
    where.add_argument("--outputs", type=Path, metavar="FILE",
                       help="the stack's outputs as `pulumi stack output --json --show-secrets` prints them, "
                            "instead of running the Pulumi CLI")
    where.add_argument("--kubelogin", choices=KUBELOGIN_MODES, metavar="MODE",
                       help="log in to the cluster this way instead of the stack's kubelogin.loginMode (e.g. "
                            "azurecli on a laptop for a stack CI deploys with workloadidentity)")
    where.add_argument("--local", action="store_true", help="the stack `make run` serves on this machine")
    where.add_argument("--stack-file", type=Path, help=argparse.SUPPRESS)  # --local: default Pulumi.<stack>.yaml
    where.add_argument("--state-dir", type=Path, help=argparse.SUPPRESS)  # --local: default .serving/<stack>
    top = argparse.ArgumentParser(prog="python -m aks_serving", description=__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = top.add_subparsers(title="verbs", metavar="VERB", required=True)
    logs.add_parser(verbs, common)
    status.add_parser(verbs, common)
    keys.add_parsers(verbs, common)
    token.add_parser(verbs, common)
    return top


def target_of(args):
    if args.local:
        from aks_serving.local_stack import LocalStack
        from local.deployment import LocalDeployment
        return LocalStack(LocalDeployment(args.stack or "dev", stack_file=args.stack_file, state_dir=args.state_dir,
                                          say=lambda line: print(line, file=sys.stderr)))
    from aks_serving.deployed import DeployedStack
    from aks_serving.outputs import stack_outputs
    return DeployedStack(args.stack, stack_outputs(args.stack, args.outputs), login_mode=args.kubelogin)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.run(target_of(args), args)
    except CommandError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

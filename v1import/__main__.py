"""Bring an Azure ML v1 AKS deployment over: the files of `az ml model deploy -dc ... -ic ... -m name:version`
(and the AKS compute's settings) become a stack file that `make run STACK=<stack>` serves and `pulumi up`
deploys. Nothing is written unless the result loads as a stack config; keys are never written (the secret
commands are printed), and every v1 setting that could not be carried over is listed with why."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from v1import.compute import read_compute
from v1import.deployment_config import read_deployment_config
from v1import.documents import V1ImportError
from v1import.inference_config import read_inference_config
from v1import.mapping import Inputs, build_plan
from v1import.model_args import parse_model
from v1import.report import Report
from v1import.stack_file import merge_into, render_new, validate, write

EXAMPLE = """example:
  python -m v1import --deployment-config models/v1-deployment/deploymentconfig.json \\
      --inference-config models/v1-deployment/inferenceconfig.json \\
      --model sklearn_regression_model.pkl:1=models/v1-deployment/model/sklearn_regression_model.pkl \\
      --compute models/v1-deployment/aks-compute.json --stack v1import --service sklearn-regression \\
      --location westeurope
  make run STACK=v1import"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m v1import", description=__doc__, epilog=EXAMPLE,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    v1 = p.add_argument_group("the v1 deployment (what `az ml model deploy` took)")
    v1.add_argument("--deployment-config", "--dc", required=True, type=Path, metavar="FILE",
                    help="deploymentconfig.json or .yml (-dc), computeType AKS or AKSENDPOINT")
    v1.add_argument("--inference-config", "--ic", required=True, type=Path, metavar="FILE",
                    help="inferenceconfig.json or .yml (-ic); its paths are relative to sourceDirectory, and "
                         "sourceDirectory to the file's own folder")
    v1.add_argument("--model", "-m", action="append", default=[], metavar="NAME:VERSION=PATH",
                    help="a registered model (-m name:version) and its local file or folder (relative to the current "
                         "folder); repeat for several")
    v1.add_argument("--compute", type=Path, metavar="FILE",
                    help="the AKS compute: JSON/YAML with provisioning_configuration or attach_configuration, "
                         "keyed by the v1 SDK's parameter names (see v1import/compute.py)")
    v1.add_argument("--service", "-n", metavar="NAME", help="the service (or endpoint) name (-n); default: the stack")
    v1.add_argument("--description", help="the service's description (--description)")
    v1.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE", help="a tag (--tag); repeatable")
    v1.add_argument("--property", action="append", default=[], metavar="KEY=VALUE",
                    help="a property (--property); repeatable")
    out = p.add_argument_group("the stack")
    out.add_argument("--stack", required=True, help="the stack name: writes Pulumi.<stack>.yaml")
    where = out.add_mutually_exclusive_group()
    where.add_argument("--out", type=Path, metavar="FILE", help="a new stack file (default: Pulumi.<stack>.yaml "
                                                                 "in the current folder, the project's)")
    where.add_argument("--merge", type=Path, metavar="FILE",
                       help="an existing stack file to add the service and its environment to; its other keys, "
                            "comments and its workspace, cluster and router stay as they are")
    out.add_argument("--workspace", help="workspace.name of a new stack (default: mlw-<stack>)")
    out.add_argument("--location", help="the Azure region of a new stack (default: the compute's location)")
    out.add_argument("--files-dir", type=Path, metavar="DIR",
                     help="where files the import writes go, e.g. an inline conda file (default: v1-<stack>/)")
    out.add_argument("--dry-run", action="store_true", help="print the stack file instead of writing it")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    report = Report()
    try:
        target, text, files, warnings = run(args, report)
    except V1ImportError as err:
        print("cannot bring the v1 deployment over:\n  " + "\n  ".join(err.problems), file=sys.stderr)
        return 1
    if args.dry_run:
        print(text, end="")
    else:
        write(target, text, files)
        print(f"wrote {target}" + "".join(f"\nwrote {f}" for f in files))
    for warning in warnings:
        print(f"warning: {warning}")
    print(report.render())
    if args.dry_run:
        print("dry run: nothing written")
    else:
        print(f"next: make run STACK={args.stack}    (then: pulumi stack select {args.stack} && pulumi up)")
    return 0


def run(args: argparse.Namespace, report: Report):
    target = (args.merge or args.out or Path(f"Pulumi.{args.stack}.yaml")).resolve()
    if args.merge is None and target.exists() and not args.dry_run:
        raise V1ImportError([f"{target}: exists; add to it with --merge {target.name}, or pick another --out"])
    if args.merge is not None and not target.is_file():
        raise V1ImportError([f"--merge {args.merge}: no such stack file"])
    plan = build_plan(_inputs(args, target.parent, report), report)
    text = _merged(args, target, plan, report) if args.merge is not None else _new(args, plan, report)
    warnings = validate(text, target.parent, set(plan.files), plan.pending_secrets, plan.sections)
    return target, text, plan.files, warnings


def _inputs(args: argparse.Namespace, root: Path, report: Report) -> Inputs:
    """Every v1 input read, with the problems of all of them at once."""
    problems, read = [], {}
    for name, reader in (("deployment", lambda: read_deployment_config(args.deployment_config, report)),
                         ("inference", lambda: read_inference_config(args.inference_config, report)),
                         ("models", lambda: _each(args.model, parse_model)),
                         ("compute", lambda: read_compute(args.compute, report) if args.compute else None),
                         ("tags", lambda: _pairs(args.tag, "--tag")),
                         ("properties", lambda: _pairs(args.property, "--property"))):
        try:
            read[name] = reader()
        except V1ImportError as err:
            problems += err.problems
    if problems:
        raise V1ImportError(problems)
    return Inputs(stack=args.stack, service=args.service or args.stack, root=root,
                  files_dir=(args.files_dir or root / f"v1-{args.stack}").resolve(), workspace=args.workspace,
                  location=args.location, description=args.description, **read)


def _merged(args: argparse.Namespace, target: Path, plan, report: Report) -> str:
    # The file's own workspace stays; so does its cluster unless a compute file says what it should be.
    keep = {"workspace"} | (set() if args.compute else {"cluster"})
    sections = {name: tree for name, tree in plan.sections.items() if name not in keep}
    existing = (yaml.safe_load(target.read_text()) or {}).get("config") or {}
    if "aks-serving:router" in existing:
        _drop_tls_key(plan, report)  # the file's router (and its TLS) stays, so no key of ours goes in
    return merge_into(target.read_text(), sections, target, report)


def _new(args: argparse.Namespace, plan, report: Report) -> str:
    if args.compute is None:
        report.note("cluster", "no --compute file: a new cluster with v1's provisioning defaults (3 x "
                               "Standard_D3_v2, FastProd = production); pass --compute to carry yours")
    location = plan.sections["workspace"].get("location")
    if location is None:
        raise V1ImportError(["--location: a new stack needs the Azure region (workspace.location); v1 took the "
                             "workspace's, so give that, or a compute file with location"])
    return render_new(plan.sections, _header(args), location.value)


def _drop_tls_key(plan, report: Report) -> None:
    plan.pending_secrets = ()
    report.secret_commands = [c for c in report.secret_commands if "router.tls.key" not in c]
    report.notes = [n for n in report.notes if not n.startswith("router.tls.key")]


def _each(items: list[str], parse):
    """`parse` of every item, with the problems of all of them (not only the first bad one's)."""
    parsed, problems = [], []
    for item in items:
        try:
            parsed.append(parse(item))
        except V1ImportError as err:
            problems += err.problems
    if problems:
        raise V1ImportError(problems)
    return parsed


def _pairs(items: list[str], flag: str) -> dict[str, str]:
    return dict(_each(items, lambda item: _pair(item, flag)))


def _pair(item: str, flag: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise V1ImportError([f"{flag} {item}: must be KEY=VALUE"])
    return key, value


def _header(args: argparse.Namespace) -> list[str]:
    given = [str(args.deployment_config), str(args.inference_config)] + ([str(args.compute)] if args.compute else [])
    return [f"{args.stack}: an Azure ML v1 deployment brought over by `python -m v1import` from",
            *[f"  {file}" for file in given],
            "Each value's comment says which file and key it came from; keys are Pulumi secrets",
            "(`pulumi config set --secret`), never written here."]


if __name__ == "__main__":
    sys.exit(main())

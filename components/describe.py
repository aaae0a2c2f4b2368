"""`python -m components.describe Pulumi.<stack>.yaml`: check a stack file offline and say what it describes.

No cloud and no Pulumi CLI: the same validation `pulumi up` runs first, then a short summary.
Exits 1 with every problem, each naming its config key.
"""
from __future__ import annotations

import sys
from pathlib import Path

from components.config import ConfigError, StackConfig, config_warnings, load_stack_file
from components.config.files import missing_files
from policies.rules import capacity


def describe(cfg: StackConfig) -> list[str]:
    c = cfg.cluster
    if c.attached:
        lines = [f"cluster   attach {c.resource_id or f'{c.resource_group}/{c.name}'} ({c.purpose}; "
                 "pools are read from Azure at deploy time)"]
    else:
        pools = c.pools()
        lines = [f"cluster   create {c.name} ({c.purpose}): {capacity.describe_pools(pools)} = "
                 f"{capacity.total_nodes(pools)} nodes, {capacity.total_vcpus(pools)} vCPU"]
        lines += [f"  pool    {p.name:<10} {p.count} x {p.vm_size}" + (f", {p.gpus_per_node} GPU each" if p.gpus_per_node else "")
                  for p in pools]
    lines.append(f"router    namespace {cfg.router.namespace}, {cfg.router.load_balancer.type} load balancer, "
                 f"TLS {cfg.router.tls.mode}")
    for name, spec in cfg.services.items():
        lines.append(f"service   {name} ({spec.auth_mode} auth, environment {spec.environment})")
    for name, endpoint in cfg.endpoints.items():
        shares = ", ".join(f"{v} {share:g}%" for v, share in endpoint.effective_traffic().items())
        lines.append(f"endpoint  {name} ({endpoint.auth_mode} auth): {shares}")
    return lines


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m components.describe Pulumi.<stack>.yaml", file=sys.stderr)
        return 2
    try:
        cfg = load_stack_file(argv[0])
        # Paths in a stack file are relative to the project folder, where Pulumi.yaml and the stack file sit.
        if problems := missing_files(cfg, Path(argv[0]).resolve().parent):
            raise ConfigError(problems)
    except ConfigError as err:
        print(f"{argv[0]}: {err}", file=sys.stderr)
        return 1
    except FileNotFoundError:
        print(f"{argv[0]}: no such stack file", file=sys.stderr)
        return 1
    for warning in config_warnings(cfg):
        print(f"warning: {warning}", file=sys.stderr)
    print("\n".join(describe(cfg)))
    print("\nConfig is valid. Serve it on this machine with `make run`; deploy it with `pulumi up` (see README).")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

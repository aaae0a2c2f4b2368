"""Program cost: the Pulumi program under mocks for 1, 100 and 1,000 services, beside the SDK's floor.

`python bench/program_cost.py [--sizes 1,100,1000]` (or `make bench-program`). For each size a fresh
process runs __main__.py under tests/pulumi_mocks.py with a stack config shaped like Pulumi.dev.yaml whose
N services all use the sklearn environment and the diabetes model; another fresh process runs a program
that registers as many bare `pulumi_random.RandomString`s as the program registered, under the same mocks
and through the same runner (runpy, as Pulumi's language host runs a program): the per-resource floor.
The floor is a typed provider-SDK resource, as the issue defines it (about 3 ms each here). The program's
per-service Kubernetes objects skip that typed layer (components/kube_object.py); a raw
`pulumi.CustomResource` floor would be about 1.1 ms.
A third column registers the program's own objects flat: the same type tokens and the same inputs the
program sent (captured from a run of it in another process), each a bare `pulumi.CustomResource` or
`pulumi.ComponentResource` with plain values, no parents, no Outputs, no dependencies. It is what the SDK
costs for exactly these objects, so program / objects is what the program's structure adds (components,
parents, Outputs, dependency edges), and objects / floor is what their content costs.
Wall time is the run alone; peak RSS is the child's ru_maxrss. Both children import the same modules
before the clock starts (the program's lazily loaded provider modules included), so the fixed cost of
imports is in both RSS figures and in neither time. This VM's CPU is shared (steal time varies by tens of
percent from one minute to the next), so each size is measured `--rounds` times, the three children back to
back in each round (in turn first), and two figures are printed: the fastest run of each child (the least
disturbed run, as `timeit` does), and the median over rounds of program / floor within one round, whose
two runs were seconds apart and so saw much the same machine (the fastest of each may come from minutes
apart, one in a fast spell and the other in a slow one).
`--bytecodes 20,60` counts instead of timing: the bytecodes each service adds, for the three children, a
figure the machine's load cannot move (but blind to time spent in C).
`--instructions 20,60` counts machine instructions under valgrind's callgrind instead: deterministic like
bytecodes, and it includes the C (the GC, protobuf, json). Each child runs about 50 x slower.

Goals (issue 5): linear growth, within 1.5 x the floor, <= 1.5 GB at 1,000 services.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import copy
import functools
import importlib
import itertools
import json
import os
import pickle
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import types
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[1]
GOAL_RATIO, GOAL_RSS_MB = 1.5, 1536
MODES = ("program", "objects", "floor")  # the children; the floor needs the program's count first
COUNT_ENV = "AKS_SERVING_BENCH_COUNT"  # set for a --bytecodes child
# Provider SDK modules load lazily on first use; these are the ones the program uses beyond what the
# components' own module globals name.
KUBERNETES_MODULES = ("apiextensions", "apps.v1", "autoscaling.v2", "core.v1", "helm.v3", "meta.v1",
                      "networking.v1", "policy.v1", "rbac.v1")


def bench_config(services: int) -> dict:
    """Pulumi.dev.yaml's sections with `services` copies of its diabetes service and nothing else."""
    from pulumi_mocks import stack_file_config

    dev = stack_file_config("dev")
    diabetes = dev["services"]["diabetes"]
    config = {k: copy.deepcopy(v) for k, v in dev.items() if k not in ("services", "endpoints", "environments")}
    config["environments"] = {"sklearn": dev["environments"]["sklearn"]}
    config["services"] = {f"svc-{i:04d}": copy.deepcopy(diabetes) for i in range(services)}
    return config


def _preload() -> None:
    """Import the mocks and every program module, so neither child's clock includes imports."""
    sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
    importlib.import_module("pulumi_mocks")
    for path in sorted((ROOT / "components").glob("*.py")):
        module = importlib.import_module(f"components.{path.stem}")
        for value in vars(module).values():
            if isinstance(value, types.ModuleType):
                _load(value)
    kubernetes = importlib.import_module("pulumi_kubernetes")
    for dotted in KUBERNETES_MODULES:
        _load(functools.reduce(getattr, dotted.split("."), kubernetes))


def _load(module: types.ModuleType) -> None:
    """Make a lazily loaded module load now: any attribute but the introspection ones does that."""
    getattr(module, "_aks_serving_preload", None)


@contextlib.contextmanager
def _measured() -> Iterator[dict]:
    """The block's wall time, and in a counting child (--bytecodes) the bytecodes it ran on every thread."""
    result, counter = {}, itertools.count()

    def on_opcode(frame, event, arg):
        if event == "opcode":
            next(counter)  # one C call, atomic under the GIL: the mocks' RPCs run on executor threads
        return on_opcode

    def on_call(frame, event, arg):
        frame.f_trace_opcodes = True
        return on_opcode

    counting = bool(os.environ.get(COUNT_ENV))
    if counting:
        threading.settrace(on_call)
        sys.settrace(on_call)
    start = time.perf_counter()
    try:
        yield result
    finally:
        result["seconds"] = time.perf_counter() - start
        if counting:
            sys.settrace(None)
            threading.settrace(None)
            result["bytecodes"] = next(counter)


def child_program(services: int) -> dict:
    from pulumi_mocks import run_program

    config = bench_config(services)
    with _measured() as result:
        # The program's own run, its stack outputs' registration included; not the test's reading them back.
        run = run_program(config, stack="dev", read_exports=False)
    return {**result, "resources": len(run.resources)}


def capture_objects(services: int, path: Path) -> None:
    """Pickle what the program registers for `services`: [(type, name, inputs sent or None for a component)]."""
    from pulumi_mocks import AzureStandIn, run_program

    class Recorder(AzureStandIn):
        def __init__(self):
            super().__init__()
            self.sent: dict = {}

        def new_resource(self, args):
            self.sent[(args.typ, args.name)] = args.inputs
            return super().new_resource(args)

    recorder = Recorder()
    run = run_program(bench_config(services), stack="dev", stand_in=recorder)
    path.write_bytes(pickle.dumps([(r.type, r.name, recorder.sent.get((r.type, r.name))) for r in run.resources]))


# Each floor is a program file run as the program is (run_program: runpy under the same mocks, as Pulumi's
# language host runs __main__.py), so both register from the same harness. The SDK records every frame on
# the stack for each registration (its source position): a floor called as a bare function, five frames
# shallower, would make each of its registrations cheaper for a reason no program has.
FLOOR_PROGRAM = """import pulumi_random

for i in range({resources}):
    pulumi_random.RandomString(f"bare-{{i}}", length=8)
"""

# Constructed through subclasses, as every resource in a program is: the SDK takes the frames below the
# class's own __init__ as the source position, and a bare CustomResource would skip that.
OBJECTS_PROGRAM = """import pickle

import pulumi


class Custom(pulumi.CustomResource):
    def __init__(self, type_, name, inputs):
        super().__init__(type_, name, inputs)


class Component(pulumi.ComponentResource):
    def __init__(self, type_, name):
        super().__init__(type_, name)


with open({path!r}, "rb") as objects:
    for type_, name, inputs in pickle.load(objects):
        if inputs is None:
            Component(type_, name)
        else:
            Custom(type_, name, inputs)
"""


def child_objects(services: int) -> dict:
    """The program's objects registered flat, each with the inputs the program sent and nothing else."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "objects.pickle"
        subprocess.run([sys.executable, __file__, "--child", "capture", str(services), str(path)], cwd=ROOT, check=True)
        return _run_file(Path(tmp), OBJECTS_PROGRAM.format(path=str(path)))


def child_floor(resources: int) -> dict:
    """`resources` bare registrations."""
    with tempfile.TemporaryDirectory() as tmp:
        return _run_file(Path(tmp), FLOOR_PROGRAM.format(resources=resources))


def _run_file(directory: Path, text: str) -> dict:
    """Run `text` as a program under the mocks, as run_program runs __main__.py; time and registrations."""
    from pulumi_mocks import run_program

    program = directory / "__main__.py"
    program.write_text(text)
    with _measured() as result:
        run = run_program({}, stack="dev", read_exports=False, program=program)
    return {**result, "resources": len(run.resources)}


def measure_instructions(mode: str, n: int) -> tuple[int, int]:
    """Run one child under callgrind: (instructions it executed, resources it registered). The count covers
    the whole process, imports included; count_per_service differences two sizes, so those cancel."""
    child = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
                            __file__, "--child", mode, str(n)], cwd=ROOT, capture_output=True, text=True)
    if child.returncode != 0:
        raise SystemExit(f"{mode} child for {n} exited {child.returncode} under valgrind:\n{child.stderr[-2000:]}")
    collected = re.search(r"Collected : (\d+)", child.stderr)
    if collected is None:
        raise SystemExit(f"callgrind printed no instruction count for the {mode} child:\n{child.stderr[-2000:]}")
    return int(collected.group(1)), json.loads(child.stdout.strip().splitlines()[-1])["resources"]


def count_bytecodes(mode: str, n: int) -> tuple[int, int]:
    """Run one child with the bytecode tracer: (bytecodes it ran while measured, resources it registered)."""
    result = measure(mode, n, count=True)
    return result["bytecodes"], result["resources"]


def measure(mode: str, n: int, count: bool = False) -> dict:
    """Run one child; its JSON result plus its peak RSS in MB (ru_maxrss is in KiB on Linux)."""
    env = {**os.environ, COUNT_ENV: "1"} if count else None
    child = subprocess.Popen([sys.executable, __file__, "--child", mode, str(n)], cwd=ROOT,
                             stdout=subprocess.PIPE, text=True, env=env)
    out = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)  # reaped here, so Popen must not wait again
    if child.returncode != 0:
        raise SystemExit(f"{mode} child for {n} exited {child.returncode}")
    return {**json.loads(out.strip().splitlines()[-1]), "rss_mb": usage.ru_maxrss / 1024}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,100,1000", help="service counts, comma-separated")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each child per size; the fastest counts")
    parser.add_argument("--bytecodes", metavar="LOW,HIGH",
                        help="instead of timing, count bytecodes per service between two sizes (e.g. 20,60)")
    parser.add_argument("--instructions", metavar="LOW,HIGH",
                        help="instead of timing, count machine instructions per service under valgrind")
    parser.add_argument("--child", nargs="+", metavar="MODE N", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, n = args.child[0], int(args.child[1])
        _preload()
        if mode == "capture":
            capture_objects(n, Path(args.child[2]))
        else:
            result = {"program": child_program, "objects": child_objects, "floor": child_floor}[mode](n)
            print(json.dumps(result), flush=True)
        # Skip interpreter teardown: the mocks' event loops complain when collected after their selectors
        # closed, which is noise, and tearing down thousands of resources is no part of the program's cost.
        os._exit(0)
    if args.bytecodes:
        return count_per_service("bytecodes", *(int(s) for s in args.bytecodes.split(",")))
    if args.instructions:
        if not shutil.which("valgrind"):
            raise SystemExit("--instructions needs valgrind (apt-get install valgrind; make bench-instructions does)")
        return count_per_service("instructions", *(int(s) for s in args.instructions.split(",")))

    rows = []
    print(f"{'services':>8} {'resources':>9} {'program s':>9} {'objects s':>9} {'floor s':>8} {'x objects':>9} "
          f"{'time x':>6} {'paired x':>8} {'ms/res':>6} {'floor ms/res':>12} {'RSS MB':>7} {'floor MB':>8} {'RSS x':>5}",
          flush=True)
    for services in (int(s) for s in args.sizes.split(",")):
        programs, objects, floors = measure_rounds(services, args.rounds)
        program, flat, floor = (min(runs, key=lambda r: r["seconds"]) for runs in (programs, objects, floors))
        paired = statistics.median(p["seconds"] / f["seconds"] for p, f in zip(programs, floors))
        program["rss_mb"], floor["rss_mb"] = (max(r["rss_mb"] for r in runs) for runs in (programs, floors))
        rows.append((services, program, floor, paired))
        n = program["resources"]
        assert flat["resources"] == n, f"the flat run registered {flat['resources']} objects, the program {n}"
        print(f"{services:>8} {n:>9} {program['seconds']:>9.2f} {flat['seconds']:>9.2f} {floor['seconds']:>8.2f} "
              f"{program['seconds'] / flat['seconds']:>9.2f} {program['seconds'] / floor['seconds']:>6.2f} {paired:>8.2f} "
              f"{1000 * program['seconds'] / n:>6.2f} {1000 * floor['seconds'] / n:>12.2f} "
              f"{program['rss_mb']:>7.0f} {floor['rss_mb']:>8.0f} {program['rss_mb'] / floor['rss_mb']:>5.2f}",
              flush=True)

    (s_lo, lo, _, _), (s_hi, hi, hi_floor, hi_paired) = rows[-2] if len(rows) > 1 else rows[-1], rows[-1]
    if s_hi > s_lo:
        print(f"growth {s_lo} -> {s_hi} services: resources x{hi['resources'] / lo['resources']:.1f}, "
              f"program time x{hi['seconds'] / lo['seconds']:.1f} (linear when the two match)")
    fastest, rss = hi["seconds"] / hi_floor["seconds"], hi["rss_mb"]
    print(f"at {s_hi} services: {fastest:.2f} x the floor fastest against fastest, {hi_paired:.2f} x paired "
          f"(goal <= {GOAL_RATIO}: {_verdict(max(fastest, hi_paired) <= GOAL_RATIO)}), "
          f"peak RSS {rss:.0f} MB (goal <= {GOAL_RSS_MB}: {_verdict(rss <= GOAL_RSS_MB)})")
    return 0


def measure_rounds(services: int, rounds: int) -> tuple[list[dict], list[dict], list[dict]]:
    """`rounds` runs of each child, the three back to back in each round, each first in turn (so none is
    always the one after a warm or a cold spell); the floor registers as many resources as the program."""
    runs: dict[str, list[dict]] = {mode: [] for mode in MODES}
    for round_ in range(rounds):
        # Round 0 starts with the program, whose resource count every floor run then uses.
        for mode in MODES[round_ % len(MODES):] + MODES[:round_ % len(MODES)]:
            runs[mode].append(measure(mode, runs["program"][0]["resources"] if mode == "floor" else services))
    return runs["program"], runs["objects"], runs["floor"]


def count_per_service(unit: str, low: int, high: int) -> int:
    """Bytecodes or machine instructions each service adds, between `low` and `high` services, for the
    program and both floors. Neither moves with the machine's load, so this compares code where CPU steal
    moves wall time by tens of percent. Bytecodes leave out time in C (the GC, protobuf's encoder, json);
    instructions count it. The floor registers as many resources as the program did at each size."""
    counter = measure_instructions if unit == "instructions" else count_bytecodes
    per, resources = {}, {}
    for mode in MODES:  # the program first: the floor needs its resource counts
        # Both sizes at once: a count does not depend on what else the machine runs.
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            sizes = [resources[services] if mode == "floor" else services for services in (low, high)]
            runs = list(pool.map(functools.partial(counter, mode), sizes))
        if mode == "program":
            resources = {services: registered for services, (_, registered) in zip((low, high), runs)}
        per[mode] = (runs[1][0] - runs[0][0]) / (high - low)
    scale, suffix = (1e6, "M") if unit == "instructions" else (1e3, "k")
    print(f"{unit} per service ({low} -> {high} services): program {per['program'] / scale:.1f} {suffix}, "
          f"objects {per['objects'] / scale:.1f} {suffix}, floor {per['floor'] / scale:.1f} {suffix}")
    ratio = per["program"] / per["floor"]
    print(f"program / floor {ratio:.2f}, program / objects "
          f"{per['program'] / per['objects']:.2f}, objects / floor {per['objects'] / per['floor']:.2f} "
          f"(goal <= {GOAL_RATIO}: {_verdict(ratio <= GOAL_RATIO)})")
    return 0


def _verdict(met: bool) -> str:
    return "met" if met else "not met"


if __name__ == "__main__":
    sys.exit(main())

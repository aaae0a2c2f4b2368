"""`logs SERVICE [--version V] [--tail N] [--follow]`: the model server's output (v1's get_logs())."""
from __future__ import annotations

import queue
import sys
import threading
from typing import Iterator

from aks_serving.errors import CommandError
from aks_serving.target import LogSource, Target, deployment_service

DONE = object()


def add_parser(verbs, common) -> None:
    p = verbs.add_parser("logs", parents=[common], help="the model server's log of a service (v1: get_logs)",
                         description="Print the model server's log of each replica (pod) of a service or of "
                                     "an endpoint's version, each line prefixed with its replica when there "
                                     "are several.")
    p.add_argument("service", metavar="SERVICE", help="a service, or an endpoint (then --version)")
    p.add_argument("--version", help="the endpoint's version whose replicas to read")
    p.add_argument("--tail", type=int, metavar="N", help="only the last N lines of each replica")
    p.add_argument("--follow", "-f", action="store_true", help="keep printing new lines until Ctrl-C")
    p.set_defaults(run=run)


def run(target: Target, args) -> int:
    service = deployment_service(target.router_config(), args.service, args.version)
    sources = target.log_sources(service, args.tail, args.follow)
    if not sources:
        print(f"{service}: no replica is running in {target.label}")
        return 1
    show = _prefixed if len(sources) > 1 else (lambda name, line: line)
    failed: list[str] = []
    if args.follow and len(sources) > 1:
        _interleave(sources, show, failed)
    else:
        for source in sources:
            for line in _lines(source, failed):
                print(show(source.name, line), flush=args.follow)
    return 1 if failed else 0


def _lines(source: LogSource, failed: list[str]) -> Iterator[str]:
    """A replica's lines; one that has none to give (a pod still starting) is named, and the others go on."""
    try:
        yield from source.lines
    except CommandError as err:
        failed.append(source.name)
        print(f"{source.name}: {err}", file=sys.stderr, flush=True)


def _prefixed(name: str, line: str) -> str:
    return f"[{name}] {line}"


def _interleave(sources: list[LogSource], show, failed: list[str]) -> None:
    """Followed logs of several replicas, each line as it comes (one reader thread per replica)."""
    lines: queue.Queue = queue.Queue()

    def read(source: LogSource) -> None:
        try:
            for line in _lines(source, failed):
                lines.put((source.name, line))
        finally:
            lines.put(DONE)

    for source in sources:
        threading.Thread(target=read, args=(source,), daemon=True).start()
    running = len(sources)
    while running:
        item = lines.get()
        if item is DONE:
            running -= 1
        else:
            print(show(*item), flush=True)

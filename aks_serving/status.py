"""`status`: per service, replicas, utilization, queue and the last scaling decision (`make status`'s table)."""
from __future__ import annotations

import sys
import time

from aks_serving.target import Target
from local.status import render


def add_parser(verbs, common) -> None:
    p = verbs.add_parser("status", parents=[common], help="replicas, load and scaling of every service",
                         description="The router's view of every service: ready and current replicas, the "
                                     "replicas it wants, utilization, in-flight and queued requests, and its "
                                     "last scaling decision.")
    p.add_argument("--watch", action="store_true", help="redraw every 2 seconds until Ctrl-C")
    p.set_defaults(run=run)


def run(target: Target, args) -> int:
    live = args.watch and sys.stdout.isatty()
    try:
        while True:
            screen = render(target.status(), time.time())
            # Home the cursor and clear, so the table is redrawn in place.
            print(("\x1b[H\x1b[2J" if live else "") + screen, flush=True)
            if not args.watch:
                return 0
            time.sleep(2)
    except KeyboardInterrupt:
        return 0

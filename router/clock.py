"""The clocks the request path reads, bound once.

As `Final` names, compiled code (`router/build_native.py`) calls them through a C static; `time.monotonic()`
is a module attribute lookup each time, and the request path reads a clock about ten times per request.
"""
import time
from typing import Final

monotonic: Final = time.monotonic
wall_time: Final = time.time  # seconds since the epoch, for log lines and the Date header

"""Deadlines: a service's requests forwarded in callbacks time out on one timer, not one each."""
import asyncio

import pytest

from router.clock import monotonic
from router.deadlines import Deadlines

pytestmark = pytest.mark.asyncio


class Waiting:
    def __init__(self, deadline: float, expired: list) -> None:
        self.deadline = deadline
        self.expired = expired

    def time_out(self) -> None:
        self.expired.append((self, monotonic()))


class CountingLoop:
    """The running loop, counting the timers armed through it."""

    def __init__(self, loop):
        self.loop, self.timers = loop, 0

    def call_later(self, delay, callback, *args):
        self.timers += 1
        return self.loop.call_later(delay, callback, *args)


async def test_each_request_times_out_at_its_deadline_unless_answered_and_one_timer_serves_them_all():
    loop = CountingLoop(asyncio.get_running_loop())
    deadlines, expired = Deadlines(), []
    start = monotonic()
    items = [Waiting(start + 0.05 + i * 0.001, expired) for i in range(100)]  # one timeout, in start order
    for item in items:
        deadlines.add(item, item.deadline, loop)
    assert loop.timers == 1  # not one per request
    for item in items[::2]:  # answered in time
        deadlines.remove(item)
    await asyncio.sleep(0.4)
    assert [item for item, _ in expired] == items[1::2]
    assert all(at >= item.deadline - 0.0011 for item, at in expired)  # never more than uvloop's rounding early
    assert len(deadlines) == 0
    assert loop.timers <= len(expired) + 1  # armed again only after a fire, for the next deadline


async def test_a_shorter_deadline_added_later_still_fires_on_time():
    loop = CountingLoop(asyncio.get_running_loop())
    deadlines, expired = Deadlines(), []
    late, early = Waiting(monotonic() + 5.0, expired), Waiting(monotonic() + 0.05, expired)
    deadlines.add(late, late.deadline, loop)
    deadlines.add(early, early.deadline, loop)  # e.g. a service whose timeout was shortened
    await asyncio.sleep(0.3)
    assert [item for item, _ in expired] == [early] and len(deadlines) == 1
    deadlines.remove(late)
    assert len(deadlines) == 0

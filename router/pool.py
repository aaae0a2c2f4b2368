"""The replicas of one service and their slots: least outstanding requests, FIFO queue, ejection.

The request path only counts here (take a slot, give it back); the autoscaler reads the counts on its own
schedule, as Knative's activator and autoscaler split the work.
"""
from __future__ import annotations

import asyncio
import logging
import operator
from collections import deque
from typing import Awaitable, Callable, Final

log = logging.getLogger("router.pool")
_OUTSTANDING: Final = operator.attrgetter("outstanding")


class NoCapacity(Exception):
    """No slot came free within the queue wait (or there is no ready replica): the client gets 503."""


class Replica:
    __slots__ = ("url", "capacity", "outstanding", "ejected", "removed")

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.capacity = 0  # this router pod's share of the replica's concurrent requests
        self.outstanding = 0  # slots taken by this pod, including ones held after a 504
        self.ejected = False  # refused a connection; probed until it answers again
        self.removed = False  # gone from the backend; kept only until its requests finish

    @property
    def takes_requests(self) -> bool:
        return not (self.ejected or self.removed) and self.outstanding < self.capacity

    def __repr__(self) -> str:
        return f"Replica({self.url}, {self.outstanding}/{self.capacity})"


Prober = Callable[[str], Awaitable[bool]]


class ReplicaPool:
    def __init__(self, service: str, max_concurrent_per_replica: int, prober: Prober | None = None,
                 probe_interval: float = 1.0) -> None:
        self.service = service
        self.per_replica = max_concurrent_per_replica
        self.replicas: dict[str, Replica] = {}
        self.in_flight = 0
        self._waiters: deque[asyncio.Future] = deque()
        self._pod_index, self._pod_count = 0, 1
        self._rotation = 0
        self._prober = prober
        self._probe_interval = probe_interval
        self._probes: set[asyncio.Task] = set()
        self.on_eject: Callable[[Replica], None] = lambda r: None

    # ---- counts (read by the autoscaler and the admin port) -----------------------------------

    @property
    def queued(self) -> int:
        return len(self._waiters)

    @property
    def ready(self) -> int:
        return sum(1 for r in self.replicas.values() if not (r.ejected or r.removed))

    # ---- membership (the backend calls these) --------------------------------------------------

    def set_replicas(self, urls: list[str]) -> None:
        """Make the pool's replicas exactly `urls`; removed replicas finish what they are doing."""
        wanted = {u.rstrip("/") for u in urls}
        for url, replica in list(self.replicas.items()):
            if url not in wanted:
                replica.removed = True
                if replica.outstanding == 0:
                    del self.replicas[url]
        for url in wanted:
            existing = self.replicas.get(url)
            if existing is None:
                self.replicas[url] = Replica(url)
            else:
                existing.removed = False
        self._share_slots()

    def set_pod_share(self, index: int, count: int) -> None:
        """This is router pod `index` of `count`; it owns only its share of every replica's slots."""
        self._pod_index, self._pod_count = index, max(1, count)
        self._share_slots()

    def _share_slots(self) -> None:
        # Number every slot of every replica (in a fixed order all pods agree on) and give slot g to pod
        # g mod N: the pods' shares never overlap and add up to the per-replica cap.
        n, p, cap = self._pod_count, self._pod_index, self.per_replica
        urls = sorted(self.replicas)
        for i, url in enumerate(urls):
            self.replicas[url].capacity = sum(1 for j in range(cap) if (i * cap + j) % n == p)
        total = len(urls) * cap
        if 0 < total <= p:
            # Fewer slots than router pods: this pod would own none and answer every request with 503
            # (its queued requests would at least make the autoscaler add replicas, unless already at
            # max). Instead it shares slot p mod total with the pod that owns it, a small over-admission
            # of at most ceil(N / slots) requests per slot, only while slots are fewer than pods; as
            # Knative's activators each keep a minimum of one slot.
            self.replicas[urls[(p % total) // cap]].capacity += 1
        self._dispatch()

    # ---- slots (the request path calls these) --------------------------------------------------

    def try_acquire(self, prefer: Replica | None = None) -> Replica | None:
        """A slot now, if one is free and nobody waits ahead (the common case, without a coroutine); on
        `prefer` if it has one (the replica `pick` chose for this request)."""
        if self._waiters:
            return None
        if prefer is not None and prefer.takes_requests and self.replicas.get(prefer.url) is prefer:
            return self.take(prefer)
        replica = self._pick()
        return self.take(replica) if replica is not None else None

    def pick(self) -> Replica | None:
        """The replica `try_acquire` would take a slot on, without taking it (then `take`)."""
        return None if self._waiters else self._pick()

    async def acquire(self, timeout: float) -> Replica:
        replica = self.try_acquire()
        if replica is not None:
            return replica
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        self._waiters.append(waiter)
        timer = loop.call_later(timeout, self._expire, waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            # The client went away; if a slot was handed over at the same moment, give it back.
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self.release(waiter.result())
            else:
                self._forget(waiter)
            raise
        finally:
            timer.cancel()
            if not waiter.done():
                waiter.cancel()

    def _expire(self, waiter: asyncio.Future) -> None:
        if not waiter.done():
            self._forget(waiter)
            waiter.set_exception(NoCapacity("no replica slot within the queue wait"))

    def _forget(self, waiter: asyncio.Future) -> None:
        try:
            self._waiters.remove(waiter)
        except ValueError:
            pass

    def release(self, replica: Replica) -> None:
        replica.outstanding -= 1
        self.in_flight -= 1
        if replica.removed and replica.outstanding == 0 and self.replicas.get(replica.url) is replica:
            del self.replicas[replica.url]
        self._dispatch()

    def take(self, replica: Replica) -> Replica:
        replica.outstanding += 1
        self.in_flight += 1
        return replica

    def _pick(self) -> Replica | None:
        """Least outstanding among replicas with a free slot; ties rotate so load spreads evenly."""
        candidates = [r for r in self.replicas.values() if r.takes_requests]
        if len(candidates) < 2:  # the common case of one replica costs no rotation
            return candidates[0] if candidates else None
        self._rotation += 1
        start = self._rotation % len(candidates)
        rotated = candidates[start:] + candidates[:start]
        return min(rotated, key=_OUTSTANDING)

    def _dispatch(self) -> None:
        """Hand free slots to waiters in arrival order."""
        while self._waiters:
            replica = self._pick()
            if replica is None:
                return
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(self.take(replica))

    # ---- failures -------------------------------------------------------------------------------

    def eject(self, replica: Replica) -> None:
        """The replica refused a connection: stop sending it requests and probe it until it answers."""
        if replica.ejected or replica.removed:
            return
        replica.ejected = True
        self.on_eject(replica)
        log.warning("service %s: replica %s refused a connection; ejected", self.service, replica.url)
        if self._prober is not None:
            task = asyncio.get_running_loop().create_task(self._probe_until_back(replica))
            self._probes.add(task)
            task.add_done_callback(self._probes.discard)

    async def _probe_until_back(self, replica: Replica) -> None:
        while replica.ejected and not replica.removed:
            await asyncio.sleep(self._probe_interval)
            if self._prober is not None and await self._prober(replica.url):
                replica.ejected = False
                log.info("service %s: replica %s answers again; readmitted", self.service, replica.url)
                self._dispatch()

    def close(self) -> None:
        for task in self._probes:
            task.cancel()

"""ReplicaPool on its own: slot sharing across router pods, membership changes, FIFO hand-over."""
import asyncio

import pytest

from router.pool import NoCapacity, ReplicaPool

URLS = [f"http://10.0.0.{i}:5001" for i in range(1, 4)]


@pytest.mark.parametrize("per_replica, pods", [(1, 2), (1, 3), (4, 3), (5, 2), (64, 3)])
def test_pods_split_every_replicas_slots_without_overlap(per_replica, pods):
    shares = []
    for index in range(pods):
        pool = ReplicaPool("svc", per_replica)
        pool.set_replicas(URLS)
        pool.set_pod_share(index, pods)
        shares.append({url: r.capacity for url, r in pool.replicas.items()})
    for url in URLS:
        assert sum(share[url] for share in shares) == per_replica  # the cap holds across pods
    totals = [sum(share.values()) for share in shares]
    assert max(totals) - min(totals) <= 1  # and every pod gets a fair part of the whole


@pytest.mark.parametrize("replicas, per_replica, pods", [(1, 1, 2), (1, 1, 3), (1, 2, 5), (2, 1, 3), (1, 3, 4)])
def test_with_fewer_slots_than_pods_every_pod_still_owns_one(replicas, per_replica, pods):
    """Fewer replica slots than router pods (say 1 replica x concurrency 1 and 2 router pods): no pod is
    left with no slot (it would answer 503 forever); each slot is shared by at most ceil(pods / slots)."""
    shares = []
    for index in range(pods):
        pool = ReplicaPool("svc", per_replica)
        pool.set_replicas(URLS[:replicas])
        pool.set_pod_share(index, pods)
        shares.append({url: r.capacity for url, r in pool.replicas.items()})
        assert pool.try_acquire() is not None  # this pod can take a request at once
    slots = replicas * per_replica
    assert all(sum(share.values()) >= 1 for share in shares)
    for url in URLS[:replicas]:
        admitted = sum(share[url] for share in shares)
        assert per_replica <= admitted <= per_replica * -(-pods // slots)


@pytest.mark.asyncio
async def test_removed_replica_finishes_its_requests_then_goes():
    pool = ReplicaPool("svc", 1)
    pool.set_replicas(URLS[:2])
    first = await pool.acquire(0.1)
    pool.set_replicas([u for u in URLS[:2] if u != first.url])
    assert first.url in pool.replicas and pool.ready == 1
    pool.release(first)
    assert first.url not in pool.replicas


@pytest.mark.asyncio
async def test_waiters_are_served_in_order_and_time_out():
    pool = ReplicaPool("svc", 1)
    pool.set_replicas(URLS[:1])
    held = await pool.acquire(0.1)
    order = []

    async def wait(n):
        replica = await pool.acquire(1.0)
        order.append(n)
        pool.release(replica)

    waiters = [asyncio.ensure_future(wait(n)) for n in range(3)]
    await asyncio.sleep(0)
    assert pool.queued == 3
    pool.release(held)
    await asyncio.gather(*waiters)
    assert order == [0, 1, 2] and pool.in_flight == 0
    held = await pool.acquire(0.1)
    with pytest.raises(NoCapacity):
        await pool.acquire(0.05)
    assert pool.queued == 0


@pytest.mark.asyncio
async def test_cancelled_waiter_does_not_leak_a_slot():
    pool = ReplicaPool("svc", 1)
    pool.set_replicas(URLS[:1])
    held = await pool.acquire(0.1)
    waiter = asyncio.ensure_future(pool.acquire(5))
    await asyncio.sleep(0)
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)
    assert pool.queued == 0  # a client that left is not counted as load
    pool.release(held)
    await asyncio.gather(waiter, return_exceptions=True)
    assert pool.in_flight == 0 and pool.queued == 0
    assert (await pool.acquire(0.1)) is not None

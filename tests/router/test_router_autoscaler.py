"""Autoscaler decisions on a fake clock: eager up, held down, min/max."""

import pytest

from router.autoscaler import Autoscaler, AutoscalerLoop, replicas_for_rps
from router.settings import Autoscale


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(clock, **over):
    config = Autoscale(**{"min_replicas": 1, "max_replicas": 10, "target_utilization": 70,
                          "stable_window_seconds": 60, **over})
    return Autoscaler(config, concurrency=1, clock=clock)


def test_v1_sizing_formula():
    assert replicas_for_rps(20, 10, 70, 1) == 286
    assert replicas_for_rps(7, 1, 70, 1) == 10  # 7 / 0.7 is exactly 10, despite binary floating point
    assert replicas_for_rps(100, 0.1, 70, 4) == 4


def test_scales_up_at_once_to_the_replicas_that_reach_target():
    clock = FakeClock()
    scaler = make(clock)
    d = scaler.decide(load=7, current=2)  # 350 % utilization
    assert (d.desired, d.reason) == (10, "up") and d.utilization == 350
    d = scaler.decide(load=3, current=2)  # 150 % -> ceil(3 / 0.7) = 5
    assert (d.desired, d.reason) == (5, "up")


def test_scale_up_is_capped_at_max_and_down_at_min():
    clock = FakeClock()
    scaler = make(clock, max_replicas=4, min_replicas=2, stable_window_seconds=0)
    assert scaler.decide(load=100, current=2).desired == 4
    clock.now += 1
    assert scaler.decide(load=0, current=4).desired == 2


def test_out_of_bounds_count_is_corrected_first():
    clock = FakeClock()
    scaler = make(clock, min_replicas=3)
    d = scaler.decide(load=0, current=0)  # a Deployment created with no replica count
    assert (d.desired, d.reason) == (3, "bounds")
    assert scaler.decide(load=0, current=12).desired == 10


def test_scale_down_waits_for_the_stable_window_and_keeps_the_window_peak():
    clock = FakeClock()
    scaler = make(clock)
    assert scaler.decide(load=7, current=1).desired == 10
    clock.now += 1
    assert scaler.decide(load=2.1, current=10).reason == "hold"  # needs 3
    for _ in range(59):  # 1 s to 59 s after the first low reading
        clock.now += 1
        d = scaler.decide(load=0.5, current=10)  # needs 1
        assert (d.desired, d.reason) == (10, "hold")
    clock.now += 1  # 60 s below target since the first low reading
    d = scaler.decide(load=0.5, current=10)
    assert (d.desired, d.reason) == (3, "down")  # the largest need seen in the window, not the last one
    clock.now += 1
    assert scaler.decide(load=0.5, current=3).reason == "hold"  # the next step down waits a new window


def test_a_burst_inside_the_window_resets_the_hold():
    clock = FakeClock()
    scaler = make(clock)
    scaler.decide(load=0, current=5)
    clock.now += 50
    assert scaler.decide(load=3.5, current=5).reason == "steady"  # 5 needed: no longer below target
    clock.now += 20
    assert scaler.decide(load=0, current=5).reason == "hold"  # the window starts over
    clock.now += 59
    assert scaler.decide(load=0, current=5).reason == "hold"
    clock.now += 1
    assert scaler.decide(load=0, current=5).desired == 1


def test_concurrency_counts_slots_not_replicas():
    scaler = Autoscaler(Autoscale(), concurrency=4, clock=FakeClock())
    d = scaler.decide(load=8, current=2)  # 8 of 8 slots busy = 100 %
    assert d.utilization == 100 and d.desired == 3  # ceil(8 / (4 x 0.7))


@pytest.mark.asyncio
async def test_loop_scales_only_when_leader_and_counts_decisions():
    from router.metrics import Metrics
    replicas = {"n": 1}
    scaled = []
    leader = {"yes": False}

    async def load():
        return 5.0

    async def current():
        return replicas["n"]

    async def scale(n):
        scaled.append(n)
        replicas["n"] = n

    metrics = Metrics()
    loop = AutoscalerLoop("svc", Autoscaler(Autoscale(), 1, FakeClock()), load, current, scale,
                          lambda: leader["yes"], metrics)
    assert await loop.tick() is None and scaled == []
    leader["yes"] = True
    d = await loop.tick()
    assert d.desired == 8 and scaled == [8]
    assert metrics.registry.get_sample_value("router_scale_decisions_total", {"service": "svc", "direction": "up"}) == 1
    assert (await loop.tick()).reason == "steady" and scaled == [8]


class FakeDeployment:
    """The loop's view of a Deployment and of this pod's leadership, driven by the test."""

    def __init__(self, replicas: int, load: float) -> None:
        self.replicas, self.load, self.leader = replicas, load, False
        self.scaled: list[int] = []

    async def get_load(self) -> float:
        return self.load

    async def current(self) -> int:
        return self.replicas

    async def scale(self, n: int) -> None:
        self.scaled.append(n)
        self.replicas = n

    def loop(self, clock) -> AutoscalerLoop:
        return AutoscalerLoop("svc", make(clock), self.get_load, self.current, self.scale, lambda: self.leader)


@pytest.mark.asyncio
async def test_a_new_leader_holds_scale_down_for_a_full_stable_window():
    clock = FakeClock()
    deployment = FakeDeployment(replicas=5, load=0.5)  # needs 1 of 5: below target from the start
    loop = deployment.loop(clock)
    for _ in range(30):  # a follower for 30 s: it decides nothing
        clock.now += 1
        assert await loop.tick() is None
    deployment.leader = True
    for _ in range(60):  # elected: the first 60 s of its own readings hold, whatever came before
        d = await loop.tick()
        assert (d.desired, d.reason) == (5, "hold")
        clock.now += 1
    d = await loop.tick()  # a full stable window after taking leadership
    assert (d.desired, d.reason) == (1, "down") and deployment.scaled == [1]


@pytest.mark.asyncio
async def test_a_pod_leading_again_does_not_reuse_its_stale_window():
    clock = FakeClock()
    deployment = FakeDeployment(replicas=5, load=0.5)
    deployment.leader = True
    loop = deployment.loop(clock)
    assert (await loop.tick()).reason == "hold"  # below target from here, as leader
    deployment.leader = False  # leadership moves to another pod for 100 s
    for _ in range(100):
        clock.now += 1
        assert await loop.tick() is None
    deployment.leader = True  # back: 100 s since its first low reading, but it just took over
    for _ in range(60):
        d = await loop.tick()
        assert (d.desired, d.reason) == (5, "hold")
        clock.now += 1
    assert (await loop.tick()).reason == "down" and deployment.scaled == [1]


@pytest.mark.asyncio
async def test_a_new_leader_still_scales_up_at_once():
    clock = FakeClock()
    deployment = FakeDeployment(replicas=2, load=7)
    deployment.leader = True
    d = await deployment.loop(clock).tick()
    assert (d.desired, d.reason) == (10, "up") and deployment.scaled == [10]

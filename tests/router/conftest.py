"""Shared fixtures: real aiohttp model replicas and a real router, all on 127.0.0.1."""
from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
import pytest_asyncio
import uvloop
from aiohttp.test_utils import TestServer

# `router` is a top-level package of the repository and router_testkit sits beside this file; make both
# importable however pytest was started (the repo's pytest config uses --import-mode=importlib).
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from router.app import Router  # noqa: E402
from router.server import open_scoring  # noqa: E402
from router.settings import RouterConfig  # noqa: E402
from router_testkit import PRIMARY, SECONDARY, Model, RouterClient  # noqa: E402
from kube_standin import TOKEN, StandInApiServer  # noqa: E402


def pytest_asyncio_loop_factories(config, item):
    """The hostile-client and callback-path cases run on asyncio's loop and on uvloop, which the router's image
    runs: their transports differ in when they pause, buffer and report a reset, which is what those cases
    turn on."""
    if item.module.__name__.endswith(("test_router_hostile", "test_router_callback_path", "test_router_callback_outcomes")) \
            and item.get_closest_marker("asyncio_only") is None:
        return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}
    return {"asyncio": asyncio.new_event_loop}


@pytest_asyncio.fixture
async def models():
    """A factory of started model replicas; all are closed at the end of the test."""
    started: list[Model] = []

    async def start(n: int = 1, prefix: str = "m") -> list[Model]:
        batch = []
        for _ in range(n):
            model = Model(f"{prefix}{len(started)}")
            model.server = TestServer(model.app(), host="127.0.0.1")
            await model.server.start_server()
            started.append(model)
            batch.append(model)
        return batch

    yield start
    for model in started:
        await model.server.close()


@pytest.fixture
def in_callbacks(router_client):
    """How many requests the test's routers forwarded in callbacks (router/callback_forward.py): `len()`."""
    return InCallbacks(router_client.started)


class InCallbacks:
    def __init__(self, started: list) -> None:
        self._started = started

    def __len__(self) -> int:
        return sum(m.in_callbacks for _, _, router in self._started for m in router.service_metrics.values())


@pytest.fixture
def key_files(tmp_path: Path) -> list[Path]:
    primary, secondary = tmp_path / "primary", tmp_path / "secondary"
    primary.write_text(PRIMARY + "\n")
    secondary.write_text(SECONDARY)
    return [primary, secondary]


@pytest_asyncio.fixture
async def router_client():
    """A factory: RouterConfig dict -> (client of the scoring port, Router). Closed at the end."""
    started: list[tuple[RouterClient, object, Router]] = []

    async def start(config: dict, cluster=None) -> tuple[RouterClient, Router]:
        config.setdefault("router", {}).setdefault("probeIntervalSeconds", 0.05)
        router = Router(RouterConfig.model_validate(config), cluster)
        await router.start()
        server = await open_scoring(router, "127.0.0.1", 0)  # the scoring server as `serve` runs it
        client = RouterClient("127.0.0.1", server.port)
        client.server = server  # for tests that shut the scoring port down themselves
        started.append((client, server, router))
        return client, router

    start.started = started
    yield start
    for client, server, router in started:
        await client.close()
        await server.shutdown(1)
        await router.stop()


@pytest_asyncio.fixture
async def standin():
    """The stand-in Kubernetes API server (kube_standin), accepting the token kube_standin.TOKEN."""
    server = StandInApiServer(TOKEN)
    await server.start()
    yield server
    await server.close()

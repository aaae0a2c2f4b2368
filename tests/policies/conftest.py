"""The policy pack runs as the engine runs it (tools/analyzer.py): one pack process with the default config
for the session, and fresh ones for tests that configure it differently."""
import pytest

from tools.analyzer import PolicyPack


@pytest.fixture(scope="session")
def pack():
    with PolicyPack(stack="test") as running:
        yield running


@pytest.fixture
def start_pack():
    started = []

    def start(config=None, **options):
        running = PolicyPack(stack=options.pop("stack", "test"), **options)
        started.append(running)
        return running.start(config)

    yield start
    for running in started:
        running.close()

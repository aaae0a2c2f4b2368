"""`python -m router serve` as a real process: SIGTERM -> not ready, stop accepting, finish in-flight."""
import asyncio
import json
import signal
import sys
from pathlib import Path

import aiohttp
import pytest

from router_testkit import free_port, service_config

pytestmark = pytest.mark.asyncio
REPO = Path(__file__).resolve().parents[2]




async def test_sigterm_drains_in_flight_requests_then_exits(models, tmp_path):
    (m,) = await models(1)
    config = {"services": {"echo": service_config([m.url])}, "router": {"shutdownGraceSeconds": 10}}
    path = tmp_path / "router.json"
    path.write_text(json.dumps(config))
    port, admin_port = free_port(), free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "router", "serve", "--config", str(path), "--port", str(port),
        "--admin-port", str(admin_port), cwd=REPO, stderr=asyncio.subprocess.PIPE)
    base, admin = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{admin_port}"
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(200):  # bounded wait for the process to listen
                try:
                    async with session.get(base + "/") as resp:
                        if await resp.text() == "Healthy":
                            break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.05)
            async with session.get(admin + "/readyz") as resp:
                assert resp.status == 200

            slow = asyncio.ensure_future(session.post(base + "/api/v1/service/echo/score?sleep=3", data=b"late"))
            for _ in range(200):
                if m.in_flight:
                    break
                await asyncio.sleep(0.01)
            assert m.in_flight == 1
            process.send_signal(signal.SIGTERM)
            refused = False
            for _ in range(100):  # bounded: the listener closes as soon as the signal is handled
                try:
                    async with aiohttp.ClientSession() as fresh:
                        await fresh.get(base + "/")
                except aiohttp.ClientConnectionError:
                    refused = True
                    break
                await asyncio.sleep(0.05)
            assert refused  # no longer accepting
            assert not slow.done()  # while the in-flight request is still being answered
            resp = await slow
            assert resp.status == 200 and await resp.read() == b"late"  # the in-flight request finished
        assert await asyncio.wait_for(process.wait(), 15) == 0
        log = (await process.stderr.read()).decode()
        lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
        scored = [entry for entry in lines if entry.get("path") == "/api/v1/service/echo/score"]
        assert scored and scored[-1]["status"] == 200 and scored[-1]["replica"] == m.url
        assert "late" not in log  # request bodies are never logged
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

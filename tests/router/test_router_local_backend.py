"""The `local` backend with the real Azure ML inference server (gunicorn) on 127.0.0.1.

The server lives in its own venv (router/requirements-inference.txt; it pins pydantic and opentelemetry
versions that clash with the Pulumi venv). Point ROUTER_INFERENCE_PYTHON at its interpreter, or create
<repo>/.venv-inference.
"""
import asyncio
import json
import os
from pathlib import Path

import pytest

pytestmark = pytest.mark.asyncio
REPO = Path(__file__).resolve().parents[2]
PYTHON = os.environ.get("ROUTER_INFERENCE_PYTHON") or str(REPO / ".venv-inference" / "bin" / "python")
if not Path(PYTHON).exists():
    pytestmark = [pytestmark, pytest.mark.skip(
        reason=f"no inference-server interpreter at {PYTHON}: pip install -r router/requirements-inference.txt "
               "into .venv-inference or set ROUTER_INFERENCE_PYTHON")]

SCORE_PY = '''
import json, os, time
def init():
    global prefix
    prefix = open(os.path.join(os.environ["AZUREML_MODEL_DIR"], "prefix.txt")).read().strip()
def run(raw):
    data = json.loads(raw)
    time.sleep(data.get("sleep", 0))
    return {"result": prefix + str(data.get("x")), "pid": os.getpid()}
'''


def _listening_addresses(port: int) -> set[str]:
    """Local addresses with a socket listening on `port`, from /proc/net/tcp{,6}."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.rsplit(":", 1)
            if state == "0A" and int(hex_port, 16) == port:
                found.add(address)
    return found


def _model(tmp_path) -> int:
    """Write the entry script and model dir; return the first of a few free ports for the replicas."""
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "prefix.txt").write_text("hello-")
    (tmp_path / "score.py").write_text(SCORE_PY)
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_local_replicas_serve_scale_and_stop(tmp_path, router_client):
    base = _model(tmp_path)
    config = {"services": {"local-model": {
        "auth": {"mode": "none"},
        "backend": {"kind": "local", "entryScript": str(tmp_path / "score.py"), "modelDir": str(tmp_path / "model"),
                    "python": PYTHON, "basePort": base, "replicas": 1, "drainTimeoutSeconds": 10},
        "autoscale": {"enabled": True, "minReplicas": 1, "maxReplicas": 2, "refreshSeconds": 3600},
        "requests": {"maxQueueWaitMs": 20000}}}}
    client, router = await router_client(config)
    backend = router.services["local-model"].backend
    url = "/api/v1/service/local-model/score"

    resp = await client.post(url, json={"x": 1}, headers={"x-request-id": "req-1"})
    assert resp.status == 200 and (await resp.json())["result"] == "hello-1"
    assert resp.headers["x-request-id"] == "req-1"
    assert _listening_addresses(base) == {"0100007F"}  # 127.0.0.1 only, never every interface
    swagger = await client.get("/api/v1/service/local-model/swagger.json")
    assert swagger.status == 200 and "swagger" in await swagger.json()

    await backend.scale(2)
    await backend.settled()
    assert await backend.current_replicas() == 2 and router.services["local-model"].pool.ready == 2
    both = await asyncio.gather(*(client.post(url, json={"x": i, "sleep": 0.5}) for i in range(2)))
    assert len({(await r.json())["pid"] for r in both}) == 2  # one request on each replica

    # Scale down while the replica to be removed computes: the request finishes, then it stops.
    slow = asyncio.ensure_future(client.post(url, json={"x": 9, "sleep": 1}))
    await asyncio.sleep(0.3)
    await backend.scale(1)
    assert await backend.current_replicas() == 1  # at once; the retiring replica drains meanwhile
    assert (await slow).status == 200
    await backend.settled()
    assert _listening_addresses(base + 1) == set()

    await backend.stop()
    assert _listening_addresses(base) == set()


async def test_autoscaler_scales_real_replicas_up_under_load_and_down_after_the_window(tmp_path, router_client):
    base = _model(tmp_path)
    config = {"services": {"local-model": {
        "auth": {"mode": "none"},
        "backend": {"kind": "local", "entryScript": str(tmp_path / "score.py"), "modelDir": str(tmp_path / "model"),
                    "python": PYTHON, "basePort": base},
        "autoscale": {"minReplicas": 1, "maxReplicas": 3, "refreshSeconds": 0.1, "stableWindowSeconds": 1},
        "requests": {"maxQueueWaitMs": 30000}}}}
    client, router = await router_client(config)
    backend = router.services["local-model"].backend
    assert await backend.current_replicas() == 1
    url = "/api/v1/service/local-model/score"
    # 4 concurrent 4 s requests on 1 replica of concurrency 1: utilization 400 %, so 3 replicas (the max).
    burst = [asyncio.ensure_future(client.post(url, json={"x": i, "sleep": 4})) for i in range(4)]
    for _ in range(300):  # bounded: replicas start in about a second
        if router.services["local-model"].pool.ready == 3:
            break
        await asyncio.sleep(0.05)
    assert await backend.current_replicas() == 3 and router.services["local-model"].pool.ready == 3
    answers = [await r.json() for r in await asyncio.gather(*burst)]
    assert sorted(a["result"] for a in answers) == [f"hello-{i}" for i in range(4)]
    assert len({a["pid"] for a in answers}) >= 2  # queued requests went to the new replicas
    for _ in range(200):  # idle now: back to the minimum once the 1 s window has passed
        if await backend.current_replicas() == 1:
            break
        await asyncio.sleep(0.05)
    assert await backend.current_replicas() == 1
    decisions = router.metrics.registry.get_sample_value
    for direction in ("up", "down"):
        assert decisions("router_scale_decisions_total", {"service": "local-model", "direction": direction}) >= 1


async def test_replicas_skip_ports_something_else_holds(tmp_path, router_client):
    import socket
    base = _model(tmp_path)
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", base))
    squatter.listen()  # another server on basePort: the replica must not take it (or probe it as ours)
    try:
        config = {"services": {"local-model": {
            "auth": {"mode": "none"},
            "backend": {"kind": "local", "entryScript": str(tmp_path / "score.py"),
                        "modelDir": str(tmp_path / "model"), "python": PYTHON, "basePort": base},
            "autoscale": {"enabled": False}}}}
        client, router = await router_client(config)
        resp = await client.post("/api/v1/service/local-model/score", json={"x": 2})
        assert resp.status == 200 and (await resp.json())["result"] == "hello-2"
        [replica] = router.services["local-model"].backend.replicas
        assert replica != base
    finally:
        squatter.close()


# v1 scripts: `request_headers` in run(), and rawhttp scripts reading the request themselves.
HEADERS_PY = '''
def init():
    pass
def run(data, request_headers):
    return {"seen": request_headers.get("X-Ms-Request-Id"), "data": data}
'''
RAWHTTP_PY = '''
import json
from azureml.contrib.services.aml_request import AMLRequest, rawhttp
from azureml.contrib.services.aml_response import AMLResponse
def init():
    pass
@rawhttp
def run(request):
    if request.method != "POST":
        return AMLResponse("only POST", 405)
    upload = request.files["image"]
    return AMLResponse(json.dumps({"name": upload.filename, "bytes": len(upload.read()),
                                   "type": request.headers.get("Content-Type", "").split(";")[0]}), 200)
'''


async def _one_script_service(tmp_path, router_client, script: str):
    (tmp_path / "score.py").write_text(script)
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        base = s.getsockname()[1]
    config = {"services": {"v1-script": {
        "auth": {"mode": "none"},
        "backend": {"kind": "local", "entryScript": str(tmp_path / "score.py"), "python": PYTHON, "basePort": base},
        "autoscale": {"enabled": False}, "requests": {"maxQueueWaitMs": 20000}}}}
    client, router = await router_client(config)
    for _ in range(600):  # bounded: the replica starts in about a second
        if router.services["v1-script"].pool.ready:
            break
        await asyncio.sleep(0.05)
    return client


async def test_the_clients_x_ms_request_id_reaches_request_headers_and_comes_back(tmp_path, router_client):
    client = await _one_script_service(tmp_path, router_client, HEADERS_PY)
    resp = await client.post("/api/v1/service/v1-script/score", json={"x": 1}, headers={"X-Ms-Request-Id": "client-42"})
    assert resp.status == 200
    assert await resp.json() == {"seen": "client-42", "data": '{"x": 1}'}  # run() gets the raw body, as on v1
    assert resp.headers["x-ms-request-id"] == "client-42"  # as v1 answered it


async def test_a_rawhttp_script_gets_a_file_upload_as_sent(tmp_path, router_client):
    import aiohttp
    client = await _one_script_service(tmp_path, router_client, RAWHTTP_PY)
    form = aiohttp.FormData()
    form.add_field("image", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40, filename="cat.png", content_type="image/png")
    resp = await client.post("/api/v1/service/v1-script/score", data=form)
    assert resp.status == 200
    assert json.loads(await resp.text()) == {"name": "cat.png", "bytes": 8 + 256 * 40, "type": "multipart/form-data"}

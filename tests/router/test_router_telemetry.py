"""Application Insights request telemetry from the router (router/telemetry.py), end to end: the real router
and Azure Monitor's real exporter on 127.0.0.1, posting to a stand-in ingestion endpoint (tests/ingestion_standin.py;
Azure's cannot be reached here)."""
import asyncio
import os
import re
import sys
from pathlib import Path

import pytest
import pytest_asyncio
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from ingestion_standin import IngestionStandIn
from router import telemetry, telemetry_export
from router_testkit import PRIMARY, free_port, service_config

AUTH = {"Authorization": f"Bearer {PRIMARY}"}
REPO = Path(__file__).resolve().parents[2]


@pytest_asyncio.fixture
async def ingestion(monkeypatch):
    standin = await IngestionStandIn().start()
    monkeypatch.setenv(telemetry.CONNECTION_STRING_ENV, standin.connection_string)
    yield standin
    await standin.close()


def seconds(duration: str) -> float:
    """App Insights' 'd.hh:mm:ss.fff' as seconds."""
    days, hours, minutes, secs = re.fullmatch(r"(\d+)\.(\d\d):(\d\d):(\d\d\.\d+)", duration).groups()
    return ((int(days) * 24 + int(hours)) * 60 + int(minutes)) * 60 + float(secs)


@pytest.mark.asyncio
async def test_every_request_of_an_app_insights_service_is_one_request_item(models, router_client, key_files,
                                                                           ingestion):
    (m,) = await models(1)
    watched = service_config([m.url], key_files, maxConcurrentPerReplica=1, scoringTimeoutMs=300,
                             maxQueueWaitMs=100, replicaTimeoutMs=5000, maxBodyBytes=1000)
    watched["appInsights"] = True
    version = service_config([m.url], key_files)
    version["appInsights"] = True
    client, router = await router_client({
        "services": {"watched": watched, "quiet": service_config([m.url], key_files),
                     "scores-blue": version},
        "endpoints": {"scores": {"auth": {"mode": "key", "keyFiles": [str(p) for p in key_files]},
                                 "versions": {"blue": {"service": "scores-blue"}}}}})
    score = "/api/v1/service/watched/score"

    answers = {
        "ok-1": (await client.post(score, data=b"{}", headers={**AUTH, "x-request-id": "ok-1",
                                                               "x-ms-request-id": "v1-client-7"})).status,
        "no-key": (await client.post(score, data=b"{}", headers={"x-request-id": "no-key"})).status,
        "too-big": (await client.post(score, data=b"x" * 2000, headers={**AUTH, "x-request-id": "too-big"})).status,
        "slow": (await client.get(score + "?sleep=1", headers={**AUTH, "x-request-id": "slow"})).status,
        # The slow request's replica still computes: this one waits for its slot and is refused.
        "queued": (await client.get(score, headers={**AUTH, "x-request-id": "queued"})).status,
        "via-endpoint": (await client.post("/api/v1/endpoint/scores/score", data=b"{}",
                                           headers={**AUTH, "x-request-id": "via-endpoint"})).status,
    }
    await client.post("/api/v1/service/quiet/score", data=b"{}", headers={**AUTH, "x-request-id": "quiet"})
    assert answers == {"ok-1": 200, "no-key": 401, "too-big": 413, "slow": 504, "queued": 503, "via-endpoint": 200}
    # Only ok-1 and via-endpoint reached a replica (with the quiet service's request, three in all).
    assert await ingestion.until(lambda: len(ingestion.of_type("RequestData")) >= len(answers), 15)
    await asyncio.sleep(1.5)  # one more export round: nothing else may arrive

    items = {i["properties"]["requestId"]: i for i in ingestion.of_type("RequestData")}
    assert len(ingestion.of_type("RequestData")) == len(answers)  # one item each, none for `quiet`
    assert {rid: int(i["responseCode"]) for rid, i in items.items()} == answers
    assert {rid: i["properties"]["service"] for rid, i in items.items()} == {
        **{rid: "watched" for rid in answers if rid != "via-endpoint"}, "via-endpoint": "scores-blue"}
    assert items["via-endpoint"]["properties"]["version"] == "blue"
    assert "version" not in items["ok-1"]["properties"]
    assert items["ok-1"]["properties"]["clientRequestId"] == "v1-client-7"  # v1's Client Request Id
    assert "clientRequestId" not in items["no-key"]["properties"]
    assert items["ok-1"]["name"] == "POST /api/v1/service/watched/score"
    assert items["ok-1"]["success"] is True
    assert [items[r]["success"] for r in ("no-key", "too-big", "slow", "queued")] == [False] * 4
    assert 0.3 <= seconds(items["slow"]["duration"]) < 1  # cut off at the scoring timeout
    assert 0.1 <= seconds(items["queued"]["duration"]) < 0.5  # refused after the queue wait
    role = {e["tags"]["ai.cloud.role"] for e in ingestion.envelopes if e["data"]["baseType"] == "RequestData"}
    assert role == {telemetry_export.CLOUD_ROLE}
    assert (router.telemetry.exported, router.telemetry.dropped, router.telemetry.failed) == (len(answers), 0, 0)
    page = (await router.metrics_page(None)).body.decode()
    assert f'router_telemetry_items_total{{outcome="exported"}} {len(answers)}.0' in page
    assert 'router_telemetry_items_total{outcome="dropped"} 0.0' in page


@pytest.mark.asyncio
async def test_without_a_connection_string_the_router_serves_and_records_nothing(models, router_client,
                                                                                monkeypatch):
    monkeypatch.delenv(telemetry.CONNECTION_STRING_ENV, raising=False)
    (m,) = await models(1)
    config = service_config([m.url])
    config["appInsights"] = True
    client, router = await router_client({"services": {"echo": config}})
    assert router.telemetry is None
    assert (await client.post("/api/v1/service/echo/score", data=b"{}")).status == 200



def test_a_full_buffer_drops_and_counts():
    recorder = telemetry.RequestTelemetry(max_buffered=5)
    for i in range(8):
        recorder.record("echo", None, b"POST", "/api/v1/service/echo/score", 200, b"r%d" % i, None, 100.0 + i, 0.25)
    assert recorder.dropped == 3  # the request path never waits for room
    recorder.flush()  # no exporter process (never started): the batch is dropped and counted, not kept
    assert recorder.dropped == 8


# A stand-in exporter process (Azure Monitor's is not needed to show how the router keeps one running): it
# counts its launches in a file, reports a total among stray output, then exits as a crashed exporter does.
CRASHING_EXPORTER = """
import pathlib, sys
launches = pathlib.Path(sys.argv[1])
n = int(launches.read_text() or 0) + 1 if launches.exists() else 1
launches.write_text(str(n))
print("a library's stray print", flush=True)
print('{"exported": 2, "failed": 1}', flush=True)
sys.exit(3)
"""


@pytest.mark.asyncio
async def test_an_exporter_process_that_dies_is_started_again_and_its_counts_kept(tmp_path):
    launches = tmp_path / "launches"
    recorder = telemetry.RequestTelemetry([sys.executable, "-c", CRASHING_EXPORTER, str(launches)],
                                          restart_seconds=0.05)
    await recorder.start()
    try:
        deadline = asyncio.get_running_loop().time() + 10  # bounded: 0.05, 0.1, 0.2 s pauses, then a third launch
        while (int(launches.read_text() or 0) if launches.exists() else 0) < 3:
            assert asyncio.get_running_loop().time() < deadline, "the exporter was not started again"
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)
    finally:
        await recorder.stop()
    # Each process reports its own totals: the router adds them up across restarts, and a stray line is skipped.
    assert recorder.exported >= 4 and recorder.exported % 2 == 0 and recorder.failed == recorder.exported // 2


def test_records_become_server_spans_posted_in_batches():
    exporter = InMemorySpanExporter()
    posts = []
    recorder = telemetry_export.Exporter(exporter, telemetry_export.tracer_provider(), max_batch=2)
    records = [(100.0 + i, 0.25, "echo", "v1" if i else None, b"POST", "/api/v1/service/echo/score", 200 + i,
                b"r%d" % i, b"client-%d" % i if i else None) for i in range(5)]
    recorder.export(1000.0, records, report=lambda: posts.append(recorder.exported))
    spans = exporter.get_finished_spans()
    assert posts == [2, 4, 5]  # three posts of at most two
    assert [s.attributes["requestId"] for s in spans] == ["r0", "r1", "r2", "r3", "r4"]
    assert spans[0].start_time == 1_100_000_000_000 and spans[0].end_time - spans[0].start_time == 250_000_000
    assert spans[0].name == "POST /api/v1/service/echo/score" and spans[0].kind.name == "SERVER"
    assert spans[1].attributes["http.response.status_code"] == 201 and spans[1].attributes["version"] == "v1"
    assert "version" not in spans[0].attributes and "clientRequestId" not in spans[0].attributes
    assert spans[1].attributes["clientRequestId"] == "client-1"


def test_a_refusing_ingestion_endpoint_is_counted_not_raised():
    class Refusing(InMemorySpanExporter):
        def export(self, spans):
            raise ConnectionError("ingestion unreachable")

    recorder = telemetry_export.Exporter(Refusing(), telemetry_export.tracer_provider())
    recorder.export(0.0, [(1.0, 0.1, "echo", "v1", b"GET", "/api/v1/endpoint/e/score", 503, b"r", None)])
    assert recorder.failed == 1 and recorder.exported == 0


LOCAL_PYTHON = Path(os.environ.get("ROUTER_INFERENCE_PYTHON") or REPO / ".venv-inference" / "bin" / "python")
PRINTING_SCORE = ("import json\ndef init():\n    pass\n"
                  "def run(raw):\n    print('scoring', json.loads(raw)['x'])\n    return 1\n")


@pytest.mark.skipif(not LOCAL_PYTHON.exists(), reason="no .venv-inference (make venv)")
@pytest.mark.asyncio
async def test_under_make_run_local_replicas_send_print_output_and_the_router_the_requests(
        tmp_path, router_client, ingestion, monkeypatch):
    # What `make run` renders for enableAppInsights (local/deployment.py): the flag in the replicas' env; the
    # key comes from the connection string in the environment, never from the config file.
    monkeypatch.setenv("APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL", "true")  # no network here
    (tmp_path / "score.py").write_text(PRINTING_SCORE)
    client, router = await router_client({"services": {"printer": {
        "appInsights": True, "auth": {"mode": "none"},
        "backend": {"kind": "local", "entryScript": str(tmp_path / "score.py"), "python": str(LOCAL_PYTHON),
                    "basePort": free_port(), "env": {"AML_APP_INSIGHTS_ENABLED": "true"}},
        "autoscale": {"enabled": False}, "requests": {"maxQueueWaitMs": 60000}}}})
    assert "AML_APP_INSIGHTS_KEY" not in router.config.model_dump_json()
    resp = await client.post("/api/v1/service/printer/score", json={"x": 5}, headers={"x-request-id": "printed"})
    assert resp.status == 200

    def arrived():
        requests = ingestion.of_type("RequestData")
        return ("scoring 5" in [m["message"] for m in ingestion.of_type("MessageData")]
                and any(r["properties"].get("requestId") == "printed" for r in requests)  # the router's
                # the server's, under the same id (sent once: "printed,printed" if the router forwarded it twice)
                and any(r["properties"].get("Request Id") == "printed" for r in requests))
    assert await ingestion.until(arrived, 30), ingestion.envelopes

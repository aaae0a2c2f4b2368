"""ACR Tasks builds (components/acr_tasks.py) against a local stand-in for ARM's registry run API.

Stand-in: `ArmStandIn` on 127.0.0.1 answers listBuildSourceUploadUrl (an upload URL on itself), the blob
PUT, scheduleRun (202 and a Location, as ARM's long-running operations answer), runs/<id> (each GET moves
the run one status on) and listLogSasUrl, as the 2019-06-01-preview API does.
"""
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest
import requests

from components import acr_tasks
from components.acr_tasks import AcrTaskError, AcrTasks

REGISTRY_ID = "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/mlwdevacr"
IMAGE = "mlwdevacr.azurecr.io/aks-serving/router:0123"
CONTEXT = b"\x1f\x8b normalized context"


class ArmStandIn:
    def __init__(self, statuses=("Queued", "Running", "Succeeded"), log="Step 1/3\nerror: failed to solve: exit code 1\n"):
        self.statuses, self.log = list(statuses), log
        self.calls: list[tuple[str, str]] = []
        self.uploaded, self.scheduled, self.cancelled = None, None, False
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _reply(self, status, body=None, headers=None):
                data = json.dumps(body).encode() if body is not None else b""
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _body(self):
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _run(self):
                status = stand_in.statuses.pop(0) if len(stand_in.statuses) > 1 else stand_in.statuses[0]
                return {"properties": {"runId": "cb7", "status": status}}

            def do_POST(self):
                path, body = urlsplit(self.path).path, self._body()
                stand_in.calls.append(("POST", self.path))
                assert self.headers["Authorization"] == "Bearer arm-token"
                if path.endswith("/listBuildSourceUploadUrl"):
                    return self._reply(200, {"uploadUrl": f"{stand_in.url}/blob/source.tar.gz?sig=SECRETSIG",
                                             "relativePath": "source/202612/source.tar.gz"})
                if path.endswith("/scheduleRun"):
                    stand_in.scheduled = json.loads(body)
                    return self._reply(202, headers={"Location": f"{stand_in.url}/operations/op1?api-version=x",
                                                     "Retry-After": "0"})
                if path.endswith("/runs/cb7/listLogSasUrl"):
                    return self._reply(200, {"logLink": f"{stand_in.url}/log?sig=LOGSIG"})
                if path.endswith("/runs/cb7/cancel"):
                    stand_in.cancelled = True
                    return self._reply(200, {})
                self._reply(404, {"error": {"code": "NotFound", "message": path}})

            def do_PUT(self):
                stand_in.calls.append(("PUT", self.path))
                assert self.headers["x-ms-blob-type"] == "BlockBlob" and "Authorization" not in self.headers
                stand_in.uploaded = self._body()
                self._reply(201)

            def do_GET(self):
                stand_in.calls.append(("GET", self.path))
                path = urlsplit(self.path).path
                if path == "/log":
                    data = stand_in.log.encode()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    return self.wfile.write(data)
                self._reply(200, self._run())  # the operation's Location, then runs/cb7

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def arm():
    stand_in = ArmStandIn()
    yield stand_in
    stand_in.httpd.shutdown()


def test_a_build_uploads_the_context_schedules_an_amd64_docker_build_and_waits_for_it(arm):
    run_id = acr_tasks.build(AcrTasks(REGISTRY_ID, "arm-token", arm.url), IMAGE, CONTEXT, poll=0, sleep=lambda s: None)
    assert run_id == "cb7" and arm.uploaded == CONTEXT
    assert arm.scheduled == {"type": "DockerBuildRequest", "imageNames": [IMAGE], "isPushEnabled": True,
                             "sourceLocation": "source/202612/source.tar.gz", "dockerFilePath": "Dockerfile",
                             "noCache": False, "platform": {"os": "Linux", "architecture": "amd64"},
                             "timeout": 3600, "agentConfiguration": {"cpu": 2}}
    paths = [(m, p.split("?")[0]) for m, p in arm.calls]
    assert paths[:3] == [("POST", f"{REGISTRY_ID}/listBuildSourceUploadUrl"), ("PUT", "/blob/source.tar.gz"),
                         ("POST", f"{REGISTRY_ID}/scheduleRun")]
    assert paths[3:] == [("GET", "/operations/op1"), ("GET", f"{REGISTRY_ID}/runs/cb7"), ("GET", f"{REGISTRY_ID}/runs/cb7")]
    assert all("api-version=2019-06-01-preview" in p for m, p in arm.calls if p.startswith(REGISTRY_ID))


def test_a_failed_run_names_its_error_line_and_the_log_command_never_the_log_url():
    arm = ArmStandIn(statuses=("Running", "Failed"))
    try:
        with pytest.raises(AcrTaskError) as failure:
            acr_tasks.build(AcrTasks(REGISTRY_ID, "arm-token", arm.url), IMAGE, CONTEXT, poll=0, sleep=lambda s: None)
    finally:
        arm.httpd.shutdown()
    assert str(failure.value) == (f"{IMAGE}: ACR Tasks run cb7 ended Failed: error: failed to solve: exit code 1; "
                                  "the whole log: az acr task logs --registry mlwdevacr --run-id cb7")
    assert "SIG" not in str(failure.value)


def test_a_run_that_outlives_the_timeout_is_cancelled_and_named():
    arm = ArmStandIn(statuses=("Running",))
    now = [0.0]
    try:
        with pytest.raises(AcrTaskError, match=r"run cb7 was still Running after 60 minutes and was cancelled"):
            acr_tasks.build(AcrTasks(REGISTRY_ID, "arm-token", arm.url), IMAGE, CONTEXT, timeout=3600, poll=600,
                            sleep=lambda s: now.__setitem__(0, now[0] + s), clock=lambda: now[0])
    finally:
        arm.httpd.shutdown()
    assert arm.cancelled
    assert len([p for m, p in arm.calls if m == "GET" and "/runs/cb7" in p]) == 6  # bounded: 60 min at 10-min polls


def test_an_upload_that_cannot_connect_never_shows_the_upload_urls_signature(arm):
    arm.httpd.shutdown()
    arm.httpd.server_close()
    closed = ArmStandIn()  # answers ARM, but hands out an upload URL on a port nothing listens on
    try:
        tasks = AcrTasks(REGISTRY_ID, "arm-token", closed.url)
        original = tasks._call

        def call(method, path, **kwargs):
            response = original(method, path, **kwargs)
            if path == "listBuildSourceUploadUrl":
                response._content = json.dumps({"uploadUrl": f"{arm.url}/blob/x.tar.gz?sig=SECRETSIG",
                                                "relativePath": "source/x.tar.gz"}).encode()
            return response
        tasks._call = call
        with pytest.raises(AcrTaskError) as failure:
            tasks.upload_source(CONTEXT)
    finally:
        closed.httpd.shutdown()
    assert str(failure.value) == "registry mlwdevacr: uploading the build context failed (ConnectionError)"


def test_a_subscription_that_may_not_run_tasks_is_told_to_build_with_docker():
    arm = ArmStandIn()
    tasks = AcrTasks(REGISTRY_ID, "arm-token", arm.url)
    original = tasks.session.request

    def request(method, url, **kwargs):
        if url.endswith("/scheduleRun"):
            response = requests.Response()
            response.status_code, response._content = 400, json.dumps({"error": {
                "code": "TasksOperationsNotAllowed",
                "message": "ACR Tasks requests for the registry are not permitted."}}).encode()
            return response
        return original(method, url, **kwargs)
    tasks.session.request = request
    try:
        with pytest.raises(AcrTaskError, match=r"this subscription may not run ACR Tasks \(TasksOperationsNotAllowed "
                                               r".*\); set images.builder: docker"):
            acr_tasks.build(tasks, IMAGE, CONTEXT, poll=0, sleep=lambda s: None)
    finally:
        arm.httpd.shutdown()


def test_each_call_asks_for_a_current_token():
    arm = ArmStandIn()
    issued = []

    def token():
        issued.append(1)
        return "arm-token"
    try:
        acr_tasks.build(AcrTasks(REGISTRY_ID, token, arm.url), IMAGE, CONTEXT, poll=0, sleep=lambda s: None)
    finally:
        arm.httpd.shutdown()
    assert len(issued) == len([c for c in arm.calls if c[0] != "PUT"]) >= 5

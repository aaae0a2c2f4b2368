"""Build an image in its registry with ACR Tasks (as Azure ML v1 built images): no local Docker at all.

1. `POST <registry>/listBuildSourceUploadUrl` gives a SAS URL to a blob in the registry's own build-source
   storage; the context tarball is PUT there. This needs nothing beyond the registry's management rights
   the deployer has anyway (it creates the registry), where a blob in the workspace storage account would
   need a storage data role or the account key to sign a SAS.
2. `POST <registry>/scheduleRun` with a DockerBuildRequest (imageNames, isPushEnabled, sourceLocation =
   the upload's relativePath, dockerFilePath, platform linux/amd64) starts a run; ARM may answer 202 and
   a Location to poll for the run.
3. `GET <registry>/runs/<runId>` until the run ends, for at most `timeout` seconds (then it is cancelled).
   A failed run is raised with its error message or the last error line of its log, and the
   `az acr task logs` command that shows the whole log (the log's SAS URL is a credential: never printed).
ARM API version 2019-06-01-preview, the one `az acr build` uses for runs. Stdlib and requests only: the
RegistryImage provider process imports this module.
"""
from __future__ import annotations

import re
import time
from typing import Callable, Union

import requests

ARM_ENDPOINT = "https://management.azure.com"
API_VERSION = "2019-06-01-preview"
TERMINAL = {"Succeeded", "Failed", "Canceled", "Error", "Timeout"}
BUILD_TIMEOUT = 3600  # seconds; also the run's own timeout in ACR
POLL_INTERVAL = 10.0
SCHEDULE_TIMEOUT = 600  # seconds ARM may take to turn an accepted scheduleRun into a run
TIMEOUT = 60
# Azure pauses ACR Tasks runs on free-credit and trial subscriptions, answering with this code.
TASKS_NOT_ALLOWED = "TasksOperationsNotAllowed"
LOG_LIMIT = 4 * 1024 * 1024  # bytes of a failed run's log read for its error line
_ERROR_LINE = re.compile(r"error|failed|returned a non-zero code", re.IGNORECASE)


class AcrTaskError(RuntimeError):
    """An ACR Tasks run that did not succeed."""


class AcrTasks:
    """The runs API of one registry (`registry_id`: its ARM resource ID), with an ARM access token."""

    def __init__(self, registry_id: str, arm_token: Union[str, Callable[[], str]], endpoint: str = ARM_ENDPOINT):
        """`arm_token`: a token, or a function giving a current one: a build can outlast the token it began with
        (an hour of build after a cached token with minutes left), so each call asks for one."""
        self.base = f"{endpoint.rstrip('/')}{registry_id}"
        self.name = registry_id.rstrip("/").rsplit("/", 1)[-1]
        self.session = requests.Session()
        self._token = arm_token if callable(arm_token) else (lambda: arm_token)

    def _call(self, method: str, path: str, **kwargs) -> requests.Response:
        url = path if path.startswith("http") else f"{self.base}/{path}"
        self.session.headers["Authorization"] = f"Bearer {self._token()}"
        response = self.session.request(method, url, params=None if "api-version" in url else
                                        {"api-version": API_VERSION}, timeout=TIMEOUT, **kwargs)
        if response.status_code >= 400:
            error = _arm_error(response)
            if error.startswith(TASKS_NOT_ALLOWED):
                raise AcrTaskError(f"registry {self.name}: this subscription may not run ACR Tasks ({error}); "
                                   "set images.builder: docker to build on this machine instead")
            raise AcrTaskError(f"registry {self.name}: {method} {path.split('?')[0]} answered "
                               f"{response.status_code}: {error}")
        return response

    def upload_source(self, context: bytes) -> str:
        """Upload the context tarball; the relative path a run's sourceLocation names."""
        upload = self._call("POST", "listBuildSourceUploadUrl").json()
        try:
            put = requests.put(upload["uploadUrl"], data=context, timeout=600,
                               headers={"x-ms-blob-type": "BlockBlob", "Content-Type": "application/gzip"})
        except requests.RequestException as err:  # its text holds the URL, whose SAS is a write credential
            raise AcrTaskError(f"registry {self.name}: uploading the build context failed ({type(err).__name__})") \
                from None
        if put.status_code >= 400:
            raise AcrTaskError(f"registry {self.name}: uploading the build context answered {put.status_code}")
        return upload["relativePath"]

    def schedule(self, image: str, source_location: str, timeout: int = BUILD_TIMEOUT) -> dict:
        response = self._call("POST", "scheduleRun", json={
            "type": "DockerBuildRequest", "imageNames": [image], "isPushEnabled": True,
            "sourceLocation": source_location, "dockerFilePath": "Dockerfile", "noCache": False,
            "platform": {"os": "Linux", "architecture": "amd64"}, "timeout": timeout,
            "agentConfiguration": {"cpu": 2}})
        deadline = time.monotonic() + SCHEDULE_TIMEOUT
        while response.status_code == 202:  # a long-running operation: poll its Location for the run
            if time.monotonic() >= deadline:
                raise AcrTaskError(f"registry {self.name}: ARM accepted the build run for {image} but did not "
                                   f"start it within {SCHEDULE_TIMEOUT} s")
            location = response.headers["Location"]
            time.sleep(min(float(response.headers.get("Retry-After", 2)), 30.0))
            response = self._call("GET", location)
        return response.json()

    def run(self, run_id: str) -> dict:
        return self._call("GET", f"runs/{run_id}").json()

    def cancel(self, run_id: str) -> None:
        try:
            self._call("POST", f"runs/{run_id}/cancel")
        except (AcrTaskError, requests.RequestException):
            pass  # best effort: the run's own timeout stops it anyway

    def failure_line(self, run: dict) -> str:
        """The run's error message, else the last error line of its log, else nothing."""
        message = (run.get("properties") or {}).get("runErrorMessage")
        if message:
            return message.strip().splitlines()[-1]
        try:
            link = self._call("POST", f"runs/{run['properties']['runId']}/listLogSasUrl").json()["logLink"]
            log = requests.get(link, timeout=TIMEOUT, headers={"Range": f"bytes=0-{LOG_LIMIT - 1}"})
            lines = [line.strip() for line in log.text.splitlines() if _ERROR_LINE.search(line)]
            return lines[-1][:500] if lines else ""
        except (AcrTaskError, requests.RequestException, KeyError, ValueError):
            return ""


def build(tasks: AcrTasks, image: str, context: bytes, timeout: float = BUILD_TIMEOUT,
          poll: float = POLL_INTERVAL, sleep: Callable[[float], None] = time.sleep,
          clock: Callable[[], float] = time.monotonic) -> str:
    """Build and push `image` from `context` in the registry; the run ID once it succeeded."""
    run = tasks.schedule(image, tasks.upload_source(context), int(timeout))
    run_id = run["properties"]["runId"]
    deadline = clock() + timeout
    while run["properties"].get("status") not in TERMINAL:
        if clock() >= deadline:
            tasks.cancel(run_id)
            raise AcrTaskError(f"{image}: ACR Tasks run {run_id} was still {run['properties'].get('status')} after "
                               f"{timeout / 60:.0f} minutes and was cancelled; {_logs_hint(tasks, run_id)}")
        sleep(poll)
        run = tasks.run(run_id)
    status = run["properties"]["status"]
    if status != "Succeeded":
        line = tasks.failure_line(run)
        raise AcrTaskError(f"{image}: ACR Tasks run {run_id} ended {status}"
                           f"{': ' + line if line else ''}; {_logs_hint(tasks, run_id)}")
    return run_id


def _logs_hint(tasks: AcrTasks, run_id: str) -> str:
    return f"the whole log: az acr task logs --registry {tasks.name} --run-id {run_id}"


def _arm_error(response: requests.Response) -> str:
    try:
        error = response.json().get("error") or {}
        return f"{error.get('code', '')} {error.get('message', '')}".strip() or response.reason
    except ValueError:
        return response.reason or ""

"""Azure ML inference server processes on this machine, one per replica, bound to 127.0.0.1.

`azmlinfsrv` binds every interface, so each replica runs the server's WSGI app under gunicorn with an
explicit `-b 127.0.0.1:<port>` instead. A replica joins the pool once `GET /` answers, and leaves it
(drained: no new requests, in-flight ones finish) before its process is stopped.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import signal
import socket
import sys
from pathlib import Path

import aiohttp

from ..pool import ReplicaPool
from ..settings import LocalBackend, ServiceConfig

log = logging.getLogger("router.local")
APP = "azureml_inference_server_http.server.entry:app"
READY_POLL_SECONDS = 0.2


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class LocalReplica:
    def __init__(self, port: int, process: asyncio.subprocess.Process) -> None:
        self.port = port
        self.process = process
        self.ready = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class LocalReplicas:
    can_scale = True

    def __init__(self, service: str, config: LocalBackend, service_config: ServiceConfig) -> None:
        self.service = service
        self.config = config
        limits = service_config.requests
        self.workers = limits.max_concurrent_per_replica  # one gunicorn sync worker per concurrent slot
        self.replica_timeout_ms = limits.replica_timeout_ms or limits.scoring_timeout_ms
        autoscale = service_config.autoscale
        self.initial = max(config.replicas, autoscale.min_replicas) if autoscale.enabled else config.replicas
        self.replicas: dict[int, LocalReplica] = {}  # by port
        self.pool: ReplicaPool | None = None
        self._session: aiohttp.ClientSession | None = None
        self._lock = asyncio.Lock()  # one scaling operation at a time
        self._work: set[asyncio.Task] = set()  # replicas starting or retiring

    async def start(self, pool: ReplicaPool) -> None:
        self.pool = pool
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2))
        await self.scale(self.initial)
        await self.settled()

    async def stop(self) -> None:
        await self.scale(0)
        await self.settled()
        if self._session is not None:
            await self._session.close()

    async def current_replicas(self) -> int:
        return len(self.replicas)

    async def scale(self, replicas: int) -> None:
        """Set the replica count and return at once, as Kubernetes' scale subresource does.

        Replicas start and drain in the background, so a slow drain (up to drainTimeoutSeconds) never
        holds up the autoscaler's next decision, e.g. a scale-up when load returns mid scale-down.
        """
        async with self._lock:  # bookkeeping only: nothing slow happens under it
            if replicas > len(self.replicas):
                for port in self._free_ports(replicas - len(self.replicas)):
                    with self._log_file(port) as out:  # the child keeps its own copy of the descriptor
                        process = await asyncio.create_subprocess_exec(
                            *self._command(port), env=self._env(), cwd=self._source_directory(),
                            stdout=out, stderr=asyncio.subprocess.STDOUT if out else None)
                    replica = self.replicas[port] = LocalReplica(port, process)
                    self._background(self._admit_when_ready(replica))
            while len(self.replicas) > replicas:
                # A replica still starting is the cheapest to give up; then the newest.
                port = min(self.replicas, key=lambda p: (self.replicas[p].ready, -p))
                replica = self.replicas.pop(port)
                self._publish()  # out of the pool first: no new requests reach it
                self._background(self._retire(replica))

    async def settled(self) -> None:
        """Wait until every replica being started or retired has got there."""
        while self._work:
            await asyncio.gather(*self._work, return_exceptions=True)

    def _background(self, work) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._work.add(task)
        task.add_done_callback(self._work.discard)

    def _free_ports(self, count: int) -> list[int]:
        """The next `count` ports from basePort up that nothing else holds (a client's ephemeral port
        or another server would make gunicorn fail to bind, or answer our readiness probe for it)."""
        free = (p for p in range(self.config.base_port, 65536) if p not in self.replicas and _bindable(p))
        return [next(free) for _ in range(count)]

    def _publish(self) -> None:
        self.pool.set_replicas([r.url for r in self.replicas.values() if r.ready])

    async def _admit_when_ready(self, replica: LocalReplica) -> None:
        try:
            await asyncio.wait_for(self._wait_ready(replica), self.config.start_timeout_seconds)
        except (asyncio.TimeoutError, RuntimeError) as e:
            log.error("service %s: replica on port %d did not become ready: %s", self.service, replica.port, e)
            if self.replicas.get(replica.port) is replica:
                del self.replicas[replica.port]
            await self._terminate(replica)
            return
        if self.replicas.get(replica.port) is not replica:
            return  # scaled away while starting; _retire stops it
        replica.ready = True
        self._publish()
        log.info("service %s: replica %s ready (pid %d)", self.service, replica.url, replica.process.pid)

    def _log_file(self, port: int):
        """The replica's own log file (appended: a port used again in one run keeps what came before), or
        a null context, when no logDir is set, to keep the router's stdout."""
        if self.config.log_dir is None:
            return contextlib.nullcontext()
        self.config.log_dir.mkdir(parents=True, exist_ok=True)
        return open(self.config.log_dir / f"replica-{port}.log", "ab")

    def _command(self, port: int) -> list[str]:
        # gunicorn kills a sync worker that is silent longer than --timeout; it must outlast scoring.
        worker_timeout = max(300, math.ceil(self.replica_timeout_ms / 1000) + 10)
        return [self.config.python or sys.executable, "-m", "gunicorn", "-b", f"127.0.0.1:{port}",
                "-w", str(self.workers), "--timeout", str(worker_timeout), "--access-logfile", "-", APP]

    def _env(self) -> dict[str, str]:
        script = self.config.entry_script.resolve()
        env = {**os.environ, **self.config.env,
               "AZUREML_ENTRY_SCRIPT": str(script), "AML_APP_ROOT": str(self._app_root()),
               "AZUREML_SOURCE_DIRECTORY": str(self._source_directory()),
               "SCORING_TIMEOUT_MS": str(self.replica_timeout_ms), "WORKER_COUNT": str(self.workers)}
        if self.config.model_dir is not None:
            env["AZUREML_MODEL_DIR"] = str(self.config.model_dir.resolve())
        if env.get("AML_APP_INSIGHTS_ENABLED") == "true" and "AML_APP_INSIGHTS_KEY" not in env:
            # The server wants the key on its own (a pod gets it from the Secret); here it comes from our
            # environment's connection string, so it is never written into the router's config file.
            if key := _instrumentation_key(env.get("APPLICATIONINSIGHTS_CONNECTION_STRING", "")):
                env["AML_APP_INSIGHTS_KEY"] = key
        return env

    def _app_root(self) -> Path:
        return (self.config.app_root or self.config.entry_script.parent).resolve()

    def _source_directory(self) -> Path:
        return (self.config.source_directory or self.config.entry_script.parent).resolve()

    async def _wait_ready(self, replica: LocalReplica) -> None:
        while True:
            if replica.process.returncode is not None:
                raise RuntimeError(f"exited with code {replica.process.returncode}")
            try:
                async with self._session.get(replica.url + "/") as resp:
                    if resp.status == 200:
                        return
            except (aiohttp.ClientError, asyncio.TimeoutError):
                pass
            await asyncio.sleep(READY_POLL_SECONDS)

    async def _retire(self, replica: LocalReplica) -> None:
        """Let in-flight requests finish (up to the drain timeout), then stop the process."""
        pooled = self.pool.replicas.get(replica.url)
        deadline = asyncio.get_running_loop().time() + self.config.drain_timeout_seconds
        while pooled is not None and pooled.outstanding and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        await self._terminate(replica)
        log.info("service %s: replica %s stopped", self.service, replica.url)

    async def _terminate(self, replica: LocalReplica) -> None:
        process = replica.process
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)  # gunicorn: graceful, workers finish their request
            try:
                await asyncio.wait_for(process.wait(), 30)
            except asyncio.TimeoutError:
                process.kill()
                await process.wait()


def _instrumentation_key(connection_string: str) -> str:
    for part in connection_string.split(";"):
        key, _, value = part.partition("=")
        if key.strip().lower() == "instrumentationkey":
            return value.strip()
    return ""

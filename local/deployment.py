"""Serve a stack on this machine: the real router (local backend) and the Azure ML inference server.

`prepare` does everything that can fail (config, files, environments, init(), ports, keys) before any
process starts; `serve` starts the router, waits for every service's replicas, writes
`.serving/<stack>/deployment.json` (0600) and runs until Ctrl-C or SIGTERM, then stops everything.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from prometheus_client.parser import text_string_to_metric_families

from components.config import AuthSettings, ConfigError, DeploymentSpec, StackConfig, config_warnings, load_stack_file
from components.conda import CondaFileError, read_conda_file
from components.config.files import missing_files
from components.router_config import oidc_token_auth, render_router_config
from local import preflight
from local.app_layout import AppLayout
from local.environments import EnvironmentBuildError, ensure_environment, environment_python
from local.interpreters import NoSuchPython, find_python
from local.secrets import ensure_keys, ensure_signing_key, private_dir, write_private

ROOT = Path(__file__).resolve().parents[1]
FIRST_REPLICA_PORT = 5001  # the inference server's own port; each service gets a range of 100 from here
LOCAL_ISSUER = "aks-serving-local"


class DeploymentError(Exception):
    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass
class LocalDeployment:
    stack: str
    root: Path = ROOT
    host: str = "127.0.0.1"
    port: int = 8080
    admin_port: int = 8081
    say: Callable[[str], None] = print
    stack_file: Path | None = None  # default: <root>/Pulumi.<stack>.yaml
    state_dir: Path | None = None  # default: <root>/.serving/<stack>
    cfg: StackConfig | None = None
    pythons: dict[str, Path] = field(default_factory=dict)  # environment name -> interpreter

    @property
    def state(self) -> Path:
        return self.state_dir or self.root / ".serving" / self.stack

    @property
    def logs(self) -> Path:
        """Each service's replica logs, a file per replica (`python -m aks_serving logs --local`)."""
        return self.state / "logs"

    @property
    def envs(self) -> Path:
        return self.root / ".serving" / "envs"  # shared by every stack: environments are content-addressed

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def admin_url(self) -> str:
        return f"http://{self.host}:{self.admin_port}"

    # ---- before anything starts ------------------------------------------------------------------

    def load(self) -> StackConfig:
        stack_file = self.stack_file or self.root / f"Pulumi.{self.stack}.yaml"
        try:
            self.cfg = load_stack_file(stack_file)
        except FileNotFoundError:
            raise DeploymentError([f"no stack file {stack_file}"]) from None
        except ConfigError as err:
            raise DeploymentError(err.problems) from None
        if problems := missing_files(self.cfg, self.root):
            raise DeploymentError(problems)
        return self.cfg

    def prepare(self, build: bool = True) -> dict:
        """Check and build everything; return the RouterConfig document, written to the state folder."""
        cfg = self.load()
        for warning in config_warnings(cfg):
            if not warning.startswith("cluster"):  # the cluster is not part of a local run
                self.say(f"warning: {warning}")
        self._environments(build)
        if build:
            self._check_init()
        private_dir(self.state)
        document = render_router_config(cfg, self._backend(), self._auth,
                                        router={"shutdownGraceSeconds": 10})
        write_private(self.state / "router.json", json.dumps(document, indent=1).encode())
        return document

    def _environments(self, build: bool) -> None:
        used = sorted({spec.environment for _, _, spec in self.cfg.deployments()})
        problems = []
        for name in used:  # every conda file read and its Python found before any environment is built
            env = self.cfg.environments[name]
            try:
                find_python(read_conda_file(self.root / env.conda_file).python,
                            f"environments.{name} ({env.conda_file})")
            except (CondaFileError, NoSuchPython) as err:
                problems.append(str(err))
        if problems:
            raise DeploymentError(problems)
        for name in used:
            env = self.cfg.environments[name]
            try:
                self.pythons[name] = (ensure_environment(name, env, self.root, self.envs, self.say)
                                      if build else environment_python(env, self.root, self.envs))
            except EnvironmentBuildError as err:
                problems.append(str(err))
        if problems:
            raise DeploymentError(problems)

    def _check_init(self) -> None:
        problems = [p for service, path, spec in self.cfg.deployments()
                    if (p := preflight.init_failure(path, spec, self.pythons[spec.environment],
                                                    self._layout(path, spec), self._model_data(service, spec)))]
        if problems:
            raise DeploymentError(problems)

    def _layout(self, path: str, spec: DeploymentSpec) -> AppLayout:
        return AppLayout.build(self.state, path, spec, self.root)

    def _model_data(self, service: str, spec: DeploymentSpec) -> dict[str, str]:
        """Where v1's ModelDataCollector writes locally: `<state>/modeldata/local/<rg>/<workspace>/<service>/...`."""
        return {"SERVICE_NAME": service,
                "AKS_SERVING_MODELDATA": str(self.state.resolve() / "modeldata") if spec.collect_model_data else "off",
                "AKS_SERVING_SUBSCRIPTION_ID": "local",
                "AKS_SERVING_RESOURCE_GROUP": self.cfg.workspace.resource_group_name or "local",
                "AKS_SERVING_WORKSPACE_NAME": self.cfg.workspace.name}

    def _backend(self):
        deployments = self.cfg.deployments()
        paths = {service: path for service, path, _ in deployments}
        order = list(paths)

        def backend(service: str, spec: DeploymentSpec) -> dict:
            return {"kind": "local", **self._layout(paths[service], spec).backend(),
                    "env": {**self._model_data(service, spec),
                            # print() and exceptions to App Insights, with APPLICATIONINSIGHTS_CONNECTION_STRING
                            # from this shell (the router records requests with it too)
                            **({"AML_APP_INSIGHTS_ENABLED": "true"} if spec.enable_app_insights else {})},
                    "python": str(self.pythons[spec.environment]),
                    "basePort": FIRST_REPLICA_PORT + 100 * order.index(service),
                    "logDir": str(self.logs / service)}
        return backend

    def _auth(self, name: str, settings: AuthSettings) -> dict:
        if settings.auth_mode == "key":
            primary, secondary = ensure_keys(self.state / "keys" / name)
            return {"mode": "key", "keyFiles": [str(primary), str(secondary)]}
        if settings.token_auth is not None:  # validated as on the cluster; this machine fetches the issuer's keys
            return oidc_token_auth(settings.token_auth)
        if settings.auth_mode == "token":
            key = ensure_signing_key(self.state / "tokens" / f"{name}.pem")
            return {"mode": "token", "token": {"issuer": f"{LOCAL_ISSUER}/{self.stack}", "audience": name,
                                               "signingKeyFile": str(key)}}
        return {"mode": "none"}

    # ---- running ---------------------------------------------------------------------------------

    def describe(self) -> dict:
        """deployment.json: where each service and endpoint answers, and how to authenticate (as get_keys())."""
        base = f"{self.url}/api/v1"
        entries = {"services": {}, "endpoints": {}}
        for name, spec in self.cfg.services.items():
            entries["services"][name] = self._entry(name, spec, f"{base}/service/{name}/score",
                                                    f"{base}/service/{name}/swagger.json")
        for name, endpoint in self.cfg.endpoints.items():
            default = f"{name}-{endpoint.default_version}"
            entries["endpoints"][name] = {**self._entry(name, endpoint, f"{base}/endpoint/{name}/score",
                                                        f"{base}/service/{default}/swagger.json"),
                                          "traffic": endpoint.effective_traffic()}
        return {"stack": self.stack, "router": self.url, "admin": self.admin_url, **entries}

    def _entry(self, name: str, settings: AuthSettings, scoring: str, swagger: str) -> dict:
        entry = {"scoringUri": scoring, "swaggerUri": swagger, "auth": settings.auth_mode}
        if settings.auth_mode == "key":
            primary, secondary = ensure_keys(self.state / "keys" / name)
            entry.update(primaryKey=primary.read_text(), secondaryKey=secondary.read_text())
        elif settings.token_auth is not None:
            entry["tokenIssuer"] = settings.token_auth.issuer_url  # tokens come from there, not from make token
        elif settings.auth_mode == "token":
            entry["tokenCommand"] = f"make token STACK={self.stack} SERVICE={name}"
        return entry

    def _samples(self) -> dict[str, str]:
        """Example request bodies: sample-request.json beside a service's entry script, if there is one."""
        samples = {}
        for name, spec in [*self.cfg.services.items(),
                           *((n, e.versions[e.default_version]) for n, e in self.cfg.endpoints.items())]:
            sample = (self.root / spec.entry_script).parent / "sample-request.json"
            if sample.is_file():
                samples[name] = json.dumps(json.loads(sample.read_text()))
        return samples

    def serve(self, ready_timeout: float = 180) -> int:
        if busy := preflight.ports_in_use(self.host, [self.port, self.admin_port]):
            raise DeploymentError([f"port {p} on {self.host} is in use; choose others with PORT=... ADMIN_PORT=..."
                                   for p in busy])
        document = self.prepare()
        shutil.rmtree(self.logs, ignore_errors=True)  # as a new pod's log, a new run's starts empty
        log = self.state / "router.log"
        self.say(f"starting the router on {self.url} (admin {self.admin_url}); log: {log}")
        with open(log, "ab") as out:
            # Its own process group: the router and every replica it starts are stopped together.
            router = subprocess.Popen(
                [sys.executable, "-m", "router", "serve", "--config", str(self.state / "router.json"),
                 "--host", self.host, "--port", str(self.port), "--admin-port", str(self.admin_port)],
                cwd=self.root, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        stop = _StopSignal()
        try:
            if problem := self._wait_ready(router, document, ready_timeout, stop):
                self.say(f"error: {problem}")
                return 1
            description = self.describe()
            write_private(self.state / "deployment.json", json.dumps(description, indent=1).encode())
            self.say(summary(description, self.state / "deployment.json", self._samples()))
            while not stop.requested and router.poll() is None:
                time.sleep(0.2)
            if router.poll() is not None and not stop.requested:
                self.say(f"error: the router stopped (exit code {router.returncode}); see {log}")
                return 1
            return 0
        finally:
            _stop_group(router)
            # Nothing answers at those URIs now: scripts reading deployment.json must not find it.
            (self.state / "deployment.json").unlink(missing_ok=True)
            self.say("stopped")

    def _wait_ready(self, router: subprocess.Popen, document: dict, timeout: float, stop) -> str | None:
        """None once every service has its minimum of ready replicas; else what went wrong."""
        wanted = {n: s["autoscale"]["minReplicas"] for n, s in document["services"].items()}
        deadline = time.monotonic() + timeout
        ready: dict[str, float] = {}
        while time.monotonic() < deadline and not stop.requested:
            if router.poll() is not None:
                return f"the router exited with code {router.returncode}; see {self.state / 'router.log'}"
            ready = replicas_ready(self.admin_url)
            if all(ready.get(name, 0) >= count for name, count in wanted.items()):
                return None
            time.sleep(0.25)
        if stop.requested:
            return "stopped before the services were ready"
        late = {n: f"{n} ({ready.get(n, 0):g} of {c} replicas)" for n, c in wanted.items() if ready.get(n, 0) < c}
        logs = ", ".join(str(self.logs / n) for n in late)  # each replica's own output is there
        return f"not ready after {timeout:g} s: {', '.join(late.values())}; see {logs} and {self.state / 'router.log'}"


def replicas_ready(admin_url: str) -> dict[str, float]:
    try:
        with urllib.request.urlopen(f"{admin_url}/metrics", timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return {}
    return {sample.labels["service"]: sample.value for family in text_string_to_metric_families(text)
            if family.name == "router_replicas_ready" for sample in family.samples}


class _StopSignal:
    """Ctrl-C and SIGTERM ask for an orderly stop instead of killing this process mid-way."""

    def __init__(self) -> None:
        self.requested = False
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._request)

    def _request(self, signum, frame) -> None:
        self.requested = True


def _stop_group(router: subprocess.Popen, grace: float = 25) -> None:
    """SIGTERM the router (it drains and stops its replicas), then make sure nothing of its group is left."""
    if router.poll() is None:
        router.send_signal(signal.SIGTERM)
        try:
            router.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(router.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    router.wait()


def summary(description: dict, deployment_file: Path, samples: dict[str, str]) -> str:
    rows = [(name, "service", e["auth"], e["scoringUri"], e["swaggerUri"])
            for name, e in description["services"].items()]
    rows += [(name, "endpoint", e["auth"], e["scoringUri"], e["swaggerUri"])
             for name, e in description["endpoints"].items()]
    widths = [max(len(str(r[i])) for r in rows + [("NAME", "KIND", "AUTH", "SCORING URI", "")]) for i in range(4)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(("NAME", "KIND", "AUTH", "SCORING URI"), widths)) + "  SWAGGER URI"]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r[:4], widths)) + f"  {r[4]}" for r in rows]
    lines += ["", f"Keys and URIs: {deployment_file} (mode 0600). Try:",
              _curl_example(description, deployment_file, samples),
              "", "Ctrl-C stops everything."]
    return "\n".join(lines)


def _curl_example(description: dict, deployment_file: Path, samples: dict[str, str]) -> str:
    keyed = [(kind, n, e) for kind in ("services", "endpoints") for n, e in description[kind].items()
             if e["auth"] == "key"]
    if not keyed:
        return "  (no service uses key auth)"
    kind, name, entry = keyed[0]
    sample = samples.get(name, '{"data": []}')
    key = (f"$(python3 -c 'import json; print(json.load(open(\"{deployment_file}\"))[\"{kind}\"][\"{name}\"]"
           f"[\"primaryKey\"])')")
    return (f"  curl -X POST {entry['scoringUri']} \\\n    -H \"Authorization: Bearer {key}\" \\\n"
            f"    -H 'Content-Type: application/json' -d '{sample}'")

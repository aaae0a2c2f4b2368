"""The model image's entry point: the Azure ML inference server on PORT, its health on HEALTH_PORT.

    python serve.py        (environment: PORT, HEALTH_PORT, WORKER_COUNT, WORKER_TIMEOUT, BIND_HOST)

The cluster probes a health listener of its own (HEALTH_PORT), so a probe never waits behind a scoring
request a sync worker is busy with. Servers from 0.8 on have one (SEPERATE_HEALTH_ENDPOINT): this execs
`azmlinfsrv`. Older servers (0.7.7 is the newest a Python 3.6 environment can have, and v1 environments
pinned older azureml-defaults) do not: this runs the server's app under gunicorn, as `azmlinfsrv` did, and
answers HEALTH_PORT itself by asking the server's `/`. Such a probe waits behind a busy worker, as it did
on v1. SIGTERM is passed on; the exit status is the server's. Standard library only (envbuild/__init__).
"""
import os
import signal
import socketserver
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from add_server import installed_version, version_key  # noqa: E402

SEPARATE_HEALTH_SINCE = "0.8.0"
APP = "azureml_inference_server_http.server.entry:app"


def main():
    port, health_port = os.environ.get("PORT", "5001"), int(os.environ.get("HEALTH_PORT", "5000"))
    host = os.environ.get("BIND_HOST", "0.0.0.0")  # in a pod; tests bind 127.0.0.1
    version = installed_version() or "0"
    if version_key(version) >= version_key(SEPARATE_HEALTH_SINCE) and host == "0.0.0.0":
        os.execvp("azmlinfsrv", ["azmlinfsrv", "--port", port])
    server = subprocess.Popen([sys.executable, "-m", "gunicorn", "-b", "%s:%s" % (host, port),
                               "-w", os.environ.get("WORKER_COUNT", "1"),
                               "--timeout", os.environ.get("WORKER_TIMEOUT", "300"), APP])
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda number, frame: server.send_signal(number))
    health = _HealthServer((host, health_port), _handler("http://127.0.0.1:%s/" % port))
    threading.Thread(target=health.serve_forever, daemon=True).start()
    print("inference server %s has no health listener of its own: answering %s:%d for it"
          % (version, host, health_port))
    sys.stdout.flush()
    code = server.wait()
    health.shutdown()
    return code


class _HealthServer(socketserver.ThreadingMixIn, HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def _handler(server_url):
    class Health(BaseHTTPRequestHandler):
        def do_GET(self):
            try:
                with urllib.request.urlopen(server_url, timeout=5) as answer:
                    status, body = answer.status, answer.read()
            except urllib.error.HTTPError as error:
                status, body = error.code, error.read()
            except (urllib.error.URLError, OSError):
                status, body = 503, b"the inference server is not answering\n"
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass  # the probes' requests are not the server's log

    return Health


if __name__ == "__main__":
    sys.exit(main())

"""`make run` with a service that trusts an OIDC issuer: the local router validates tokens as the cluster's does.

The issuer is the router tests' stand-in (Entra-shaped, HTTPS on 127.0.0.1 with a test CA, run on a thread of
its own), since Entra cannot be reached here; the local run trusts the test CA through SSL_CERT_FILE, as a
machine behind a TLS-inspecting proxy would."""
import asyncio
import os
import threading

import pytest

from local_stack import served, write_stack
from tests.router.oidc_standin import StandInIssuer
from test_local_deployment import score


class IssuerThread:
    """The stand-in issuer on an event loop in a thread, so the synchronous test can call it."""

    def __init__(self, folder) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.issuer = StandInIssuer(folder)
        self.call(self.issuer.start())

    def call(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(30)

    def close(self) -> None:
        self.call(self.issuer.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    folder = tmp_path_factory.mktemp("local-oidc")
    idp = IssuerThread(folder)
    config = {
        "workspace": {"name": "mlw", "location": "westeurope"},
        "cluster": {"name": "aks-dev", "purpose": "dev-test", "vmSize": "Standard_D2s_v3", "nodeCount": 1},
        "environments": {"numpy": {"condaFile": "models/sentiment/conda.yml"}},
        "services": {"sentiment": {
            "environment": "numpy", "entryScript": "models/sentiment/score.py",
            "models": [{"path": "models/sentiment/model-v2/weights.json", "name": "sentiment", "version": 2}],
            "authEnabled": False, "tokenAuthEnabled": True,
            "tokenAuth": {"issuer": idp.issuer.issuer, "audience": "api://sentiment"}}},
    }
    try:
        with served(write_stack(folder / "Pulumi.e2e.yaml", config), folder / "state",
                    env={**os.environ, "SSL_CERT_FILE": str(idp.issuer.ca_file)}) as run:
            yield run, idp.issuer
    finally:
        idp.close()


def test_the_issuers_tokens_score_and_others_are_refused(running):
    run, issuer = running
    sentiment = run.deployment()["services"]["sentiment"]
    assert sentiment["auth"] == "token" and sentiment["tokenIssuer"] == issuer.issuer
    good = score(sentiment["scoringUri"], {"data": ["great service"]}, issuer.mint(audience="api://sentiment"))
    assert good.status_code == 200 and good.json()["labels"] == ["positive"]
    for bad in (issuer.mint(audience="api://other"), issuer.mint(audience="api://sentiment", iss="https://x.test/"),
                None):
        assert score(sentiment["scoringUri"], {"data": ["great service"]}, bad).status_code == 401


def test_make_token_says_where_tokens_come_from(running):
    run, issuer = running
    result = run.cli("token", "sentiment")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip() == (f"error: sentiment: tokens come from the identity provider {issuer.issuer}, "
                                     f"not from this stack: ask it for an access token with audience api://sentiment")

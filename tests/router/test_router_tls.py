"""TLS on the scoring port: the certificate follows its files without a restart (cert-manager renewals)."""
import asyncio

import pytest

from router_testkit import self_signed, served_common_name
from router.settings import RouterConfig, TlsOptions
from router.tls import ReloadingContext


@pytest.mark.asyncio
async def test_a_renewed_certificate_is_served_to_new_connections_without_a_restart(tmp_path):
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    for path, data in zip((cert, key), self_signed("first.example")):
        path.write_bytes(data)
    tls = ReloadingContext(TlsOptions(cert_file=cert, key_file=key))

    async def handle(reader, writer):
        writer.close()
    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=tls.context)
    port = server.sockets[0].getsockname()[1]
    try:
        assert await served_common_name(port) == "first.example"
        assert tls.reload_if_changed() is False  # nothing changed yet
        new_cert, new_key = self_signed("renewed.example")
        key.write_bytes(new_key)
        cert.write_bytes(new_cert)
        assert tls.reload_if_changed() is True
        assert await served_common_name(port) == "renewed.example"
        # A half-written pair (a key that does not match) keeps the current certificate.
        key.write_bytes(self_signed("other.example")[1])
        assert tls.reload_if_changed() is False
        assert await served_common_name(port) == "renewed.example"
    finally:
        server.close()
        await server.wait_closed()


def test_acme_needs_tls_and_a_cluster():
    base = {"services": {"echo": {"auth": {"mode": "none"}, "backend": {"kind": "static", "urls": ["http://127.0.0.1:1"]},
                                  "autoscale": {"enabled": False}}}}
    try:
        RouterConfig.model_validate({**base, "router": {"acme": {}}})
    except ValueError as err:
        assert "router.acme needs router.tls" in str(err)
    else:
        raise AssertionError("acme without tls was accepted")

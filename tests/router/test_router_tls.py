"""TLS on the scoring port: the certificate follows its files without a restart (cert-manager renewals)."""
import asyncio
import datetime as dt
import ssl

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from router.settings import RouterConfig, TlsOptions
from router.tls import ReloadingContext


def self_signed(name: str) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


async def served_common_name(port: int) -> str:
    client = ssl.create_default_context()
    client.check_hostname, client.verify_mode = False, ssl.CERT_NONE  # we read the certificate, not trust it
    _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port, ssl=client), 5)
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    writer.close()
    cert = x509.load_der_x509_certificate(der)
    return cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value


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

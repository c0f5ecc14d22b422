"""SSL check against real TLS servers on loopback with trustme certificates."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from typing import Any

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agent.checks import ssl as ssl_check
from agent.checks.base import CheckResult, CheckSpec, ErrorKind, Status

ServeTls = Callable[[bytes, bytes], AbstractAsyncContextManager[int]]
NAME = "example.test"


def ssl_spec(target: str, ca: trustme.CA | None, timeout_s: float = 5.0, **config: object) -> CheckSpec:
    if ca is not None:
        config = {"caBundle": ca.cert_pem.bytes().decode(), **config}
    return CheckSpec(
        monitor_id="m-ssl",
        type="SSL",
        target=target,
        interval_s=60,
        timeout_s=timeout_s,
        config={"serverName": NAME, **config},
    )


def leaf_files(cert: trustme.LeafCert) -> tuple[bytes, bytes]:
    chain = b"".join(blob.bytes() for blob in cert.cert_chain_pems)
    return chain, cert.private_key_pem.bytes()


async def check_served(
    serve_tls: ServeTls, cert: trustme.LeafCert, ca: trustme.CA | None, **config: Any
) -> CheckResult:
    async with serve_tls(*leaf_files(cert)) as port:
        return await ssl_check.run(ssl_spec(f"127.0.0.1:{port}", ca, **config))


async def test_it_accepts_a_valid_certificate(tls_ca: trustme.CA, serve_tls: ServeTls) -> None:
    result = await check_served(serve_tls, tls_ca.issue_cert(NAME, "www.example.test"), tls_ca)

    assert result.status is Status.UP, result.error_message
    assert result.error_kind is None
    details = result.details
    assert details["hostname_match"] is True
    assert details["chain_trusted"] is True
    assert details["verify_error"] is None
    assert details["sans"] == [NAME, "www.example.test"]
    assert "trustme" in details["issuer"]
    assert details["days_until_expiry"] > 365
    assert details["protocol"] in ("TLSv1.2", "TLSv1.3")
    assert details["cipher"]
    assert [link["issuer"] for link in details["chain"]] == [details["issuer"]]
    assert result.timings.tcp is not None and result.timings.tls is not None
    assert result.response_time_ms == result.timings.tcp + result.timings.tls


async def test_it_warns_when_expiry_is_near(tls_ca: trustme.CA, serve_tls: ServeTls) -> None:
    soon = datetime.now(UTC) + timedelta(days=5, hours=1)
    result = await check_served(serve_tls, tls_ca.issue_cert(NAME, not_after=soon), tls_ca)

    assert result.status is Status.UP
    assert result.error_kind is ErrorKind.CERT_EXPIRING
    assert result.details["days_until_expiry"] == 5
    assert result.error_message is not None
    assert result.error_message.startswith(f"certificate for {NAME} expires in 5 days")


async def test_it_uses_the_configured_expiry_threshold(tls_ca: trustme.CA, serve_tls: ServeTls) -> None:
    soon = datetime.now(UTC) + timedelta(days=5, hours=1)
    result = await check_served(
        serve_tls, tls_ca.issue_cert(NAME, not_after=soon), tls_ca, expiryThresholdDays=3
    )

    assert result.status is Status.UP
    assert result.error_kind is None


async def test_it_rejects_an_expired_certificate(tls_ca: trustme.CA, serve_tls: ServeTls) -> None:
    now = datetime.now(UTC)
    cert = tls_ca.issue_cert(
        NAME, not_before=now - timedelta(days=30), not_after=now - timedelta(days=2, hours=1)
    )
    result = await check_served(serve_tls, cert, tls_ca)

    assert result.status is Status.DOWN
    assert result.error_kind is ErrorKind.TLS
    assert result.error_message is not None and "certificate expired on" in result.error_message
    assert "(2 days ago)" in result.error_message
    assert result.details["days_until_expiry"] < 0
    assert result.details["chain_trusted"] is True


async def test_it_rejects_a_certificate_not_yet_valid(tls_ca: trustme.CA, serve_tls: ServeTls) -> None:
    cert = tls_ca.issue_cert(NAME, not_before=datetime.now(UTC) + timedelta(days=2))
    result = await check_served(serve_tls, cert, tls_ca)

    assert result.status is Status.DOWN
    assert result.error_kind is ErrorKind.TLS
    assert result.error_message is not None and "certificate is not valid before" in result.error_message


async def test_it_rejects_a_certificate_for_another_host(tls_ca: trustme.CA, serve_tls: ServeTls) -> None:
    result = await check_served(serve_tls, tls_ca.issue_cert("other.test"), tls_ca)

    assert result.status is Status.DOWN
    assert result.error_kind is ErrorKind.TLS
    assert result.error_message == (
        f"{NAME}: certificate does not match the host name (it is for: other.test)"
    )
    assert result.details["hostname_match"] is False
    assert result.details["chain_trusted"] is True
    assert result.details["sans"] == ["other.test"]


async def test_it_matches_a_wildcard_name(tls_ca: trustme.CA, serve_tls: ServeTls) -> None:
    result = await check_served(
        serve_tls, tls_ca.issue_cert("*.example.test"), tls_ca, serverName="api.example.test"
    )

    assert result.status is Status.UP, result.error_message
    assert result.details["hostname_match"] is True


async def test_it_matches_an_ip_address_without_server_name(tls_ca: trustme.CA, serve_tls: ServeTls) -> None:
    async with serve_tls(*leaf_files(tls_ca.issue_cert("127.0.0.1"))) as port:
        spec = ssl_spec(f"https://127.0.0.1:{port}/health", tls_ca, serverName=None)
        result = await ssl_check.run(spec)

    assert result.status is Status.UP, result.error_message
    assert result.details["hostname"] == "127.0.0.1"
    assert result.details["hostname_match"] is True


async def test_it_rejects_a_self_signed_certificate(tls_ca: trustme.CA, serve_tls: ServeTls) -> None:
    chain_pem, key_pem = self_signed(NAME)
    async with serve_tls(chain_pem, key_pem) as port:
        result = await ssl_check.run(ssl_spec(f"127.0.0.1:{port}", tls_ca))

    assert result.status is Status.DOWN
    assert result.error_kind is ErrorKind.TLS
    assert result.error_message == f"{NAME}: certificate is self-signed and not trusted"
    assert result.details["chain_trusted"] is False
    assert result.details["hostname_match"] is True
    assert result.details["subject"] == result.details["issuer"]


async def test_it_rejects_an_incomplete_chain(tls_ca: trustme.CA, serve_tls: ServeTls) -> None:
    intermediate = tls_ca.create_child_ca()
    leaf = intermediate.issue_cert(NAME)
    # Only the leaf: the intermediate that signed it stays with us.
    async with serve_tls(leaf.cert_chain_pems[0].bytes(), leaf.private_key_pem.bytes()) as port:
        result = await ssl_check.run(ssl_spec(f"127.0.0.1:{port}", tls_ca))

    assert result.status is Status.DOWN
    assert result.error_kind is ErrorKind.TLS
    assert result.error_message is not None and "incomplete chain" in result.error_message
    assert result.details["chain_trusted"] is False
    assert len(result.details["chain"]) == 1


async def test_it_accepts_a_complete_chain_with_an_intermediate(
    tls_ca: trustme.CA, serve_tls: ServeTls
) -> None:
    leaf = tls_ca.create_child_ca().issue_cert(NAME)
    result = await check_served(serve_tls, leaf, tls_ca)

    assert result.status is Status.UP, result.error_message
    assert len(result.details["chain"]) == 2
    assert result.details["chain"][0]["issuer"] == result.details["chain"][1]["subject"]


async def test_it_rejects_a_ca_not_in_the_bundle(tls_ca: trustme.CA, serve_tls: ServeTls) -> None:
    result = await check_served(serve_tls, tls_ca.issue_cert(NAME), trustme.CA())

    assert result.status is Status.DOWN
    assert result.error_kind is ErrorKind.TLS
    assert result.details["chain_trusted"] is False


async def test_it_trusts_the_system_store_without_a_bundle(tls_ca: trustme.CA, serve_tls: ServeTls) -> None:
    # A test CA is in no system store, so the default path must find the chain untrusted.
    result = await check_served(serve_tls, tls_ca.issue_cert(NAME), None)

    assert result.status is Status.DOWN
    assert result.error_kind is ErrorKind.TLS
    assert result.details["chain_trusted"] is False


async def test_it_reports_a_refused_connection() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = await ssl_check.run(ssl_spec(f"127.0.0.1:{port}", None))

    assert result.status is Status.DOWN
    assert result.error_kind is ErrorKind.CONNECTION
    assert result.error_message is not None and f"127.0.0.1:{port}" in result.error_message


async def test_it_reports_a_server_that_does_not_speak_tls() -> None:
    async with plain_server(b"SSH-2.0-OpenSSH_9.6\r\n") as port:
        result = await ssl_check.run(ssl_spec(f"127.0.0.1:{port}", None))

    assert result.status is Status.DOWN
    assert result.error_kind in (ErrorKind.TLS, ErrorKind.CONNECTION)
    assert result.error_message is not None and f"127.0.0.1:{port}" in result.error_message


async def test_it_times_out_on_a_silent_server() -> None:
    async with plain_server(None) as port:
        result = await ssl_check.run(ssl_spec(f"127.0.0.1:{port}", None, timeout_s=0.3))

    assert result.status is Status.DOWN
    assert result.error_kind is ErrorKind.TIMEOUT
    assert result.response_time_ms < 2000


@contextlib.asynccontextmanager
async def plain_server(greeting: bytes | None) -> AsyncIterator[int]:
    """A TCP server that sends `greeting` and hangs up, or (None) says nothing until the client leaves."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if greeting is None:
            await reader.read()
        else:
            writer.write(greeting)
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


def self_signed(name: str) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=90))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem

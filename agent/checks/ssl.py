"""SSL check: a TLS handshake, then the served certificate's trust, hostname, validity and expiry."""

from __future__ import annotations

import asyncio
import functools
import socket
import ssl
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from cryptography import x509

from agent.checks._net import resolve, split_host_port
from agent.checks.base import CheckError, CheckResult, CheckSpec, ErrorKind, Status, Timings
from agent.checks.ssl_certificate import (
    chain_was_trusted,
    describe_certificate,
    hostname_matches,
    verify_failure_message,
)

__all__ = ["Handshake", "SslSettings", "evaluate", "run"]


@dataclass(frozen=True)
class SslSettings:
    expiry_threshold_days: int = 14
    ca_bundle: str | None = None
    server_name: str | None = None

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> SslSettings:
        # The API validated every key (docs/monitor-config.md); only defaults are filled in here.
        return cls(
            expiry_threshold_days=int(config.get("expiryThresholdDays", 14)),
            ca_bundle=config.get("caBundle") or None,
            server_name=config.get("serverName") or None,
        )


@dataclass(slots=True)
class Handshake:
    """What one TLS handshake showed: the served chain (leaf first, DER) and the negotiated session."""

    endpoint: str
    chain: list[bytes]
    protocol: str | None
    cipher: str | None
    tcp_ms: float
    tls_ms: float
    # OpenSSL's verdict (code, message) when the verifying handshake failed; None when it passed.
    verify_error: tuple[int, str] | None = None


def parse_target(target: str) -> tuple[str, int]:
    """`host`, `host:port` or `https://host[:port]/...` into (host, port), port 443 by default."""
    if "://" in target:
        url = urlsplit(target)
        return url.hostname or "", url.port or 443
    return split_host_port(target, 443)


async def run(check: CheckSpec) -> CheckResult:
    settings = SslSettings.from_config(check.config)
    host, port = parse_target(check.target)
    server_name = settings.server_name or host
    started = time.perf_counter()
    dns_ms: float | None = None
    try:
        async with asyncio.timeout(check.timeout_s):
            addresses, dns_ms = await resolve(host)
            handshake = await _inspect(addresses[0], port, server_name, settings.ca_bundle)
        result = evaluate(handshake, server_name, settings.expiry_threshold_days, now=datetime.now(UTC))
    except CheckError as exc:
        return _failure(exc.kind, exc.message, started, dns_ms)
    except TimeoutError:
        message = f"no TLS handshake with {check.target} within the monitor timeout of {check.timeout_s:g} s"
        return _failure(ErrorKind.TIMEOUT, message, started, dns_ms)
    result.timings = Timings(
        dns=dns_ms or None,
        tcp=handshake.tcp_ms,
        tls=handshake.tls_ms,
        total=(time.perf_counter() - started) * 1000,
    )
    result.response_time_ms = handshake.tcp_ms + handshake.tls_ms
    return result


async def _inspect(address: str, port: int, server_name: str, ca_bundle: str | None) -> Handshake:
    """Handshake verifying as a client would; only if that fails, again without, to read what was served."""
    verified = await _handshake(address, port, server_name, _verifying_context(ca_bundle))
    if verified.verify_error is None:
        return verified
    unverified = await _handshake(address, port, server_name, _reading_context())
    unverified.verify_error = verified.verify_error
    # Time the handshake a client would make, not the second, diagnostic one.
    unverified.tcp_ms, unverified.tls_ms = verified.tcp_ms, verified.tls_ms
    return unverified


async def _handshake(address: str, port: int, server_name: str, context: ssl.SSLContext) -> Handshake:
    endpoint = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setblocking(False)
    started = time.perf_counter()
    try:
        await loop.sock_connect(sock, (address, port))
    except OSError as exc:
        sock.close()
        raise CheckError(
            ErrorKind.CONNECTION, f"cannot connect to {endpoint}: {exc.strerror or exc}"
        ) from exc
    connected = time.perf_counter()
    tcp_ms = (connected - started) * 1000
    try:
        _, writer = await asyncio.open_connection(sock=sock, ssl=context, server_hostname=server_name)
    except ssl.SSLCertVerificationError as exc:
        sock.close()
        tls_ms = (time.perf_counter() - connected) * 1000
        error = (exc.verify_code, exc.verify_message)
        return Handshake(endpoint, [], None, None, tcp_ms, tls_ms, verify_error=error)
    except ssl.SSLError as exc:
        sock.close()
        raise CheckError(ErrorKind.TLS, f"TLS handshake with {endpoint} failed: {exc.reason or exc}") from exc
    except OSError as exc:
        sock.close()
        raise CheckError(
            ErrorKind.CONNECTION, f"{endpoint} closed the connection during the TLS handshake"
        ) from exc
    tls_ms = (time.perf_counter() - connected) * 1000
    ssl_object = writer.get_extra_info("ssl_object")
    cipher = ssl_object.cipher()
    handshake = Handshake(
        endpoint=endpoint,
        chain=_served_chain(ssl_object),
        protocol=ssl_object.version(),
        cipher=cipher[0] if cipher else None,
        tcp_ms=tcp_ms,
        tls_ms=tls_ms,
    )
    # Nothing more to say to the server: skip the close_notify exchange, which a slow peer can stall.
    writer.transport.abort()
    return handshake


def _served_chain(ssl_object: ssl.SSLObject) -> list[bytes]:
    """The certificates the server sent, leaf first, as DER."""
    leaf = ssl_object.getpeercert(binary_form=True)
    # Public (DER bytes) from Python 3.13; 3.10-3.12 have it only on the private _sslobj.
    get_chain = getattr(ssl_object, "get_unverified_chain", None)
    if get_chain is None:
        get_chain = getattr(getattr(ssl_object, "_sslobj", None), "get_unverified_chain", None)
    served = get_chain() if get_chain is not None else None
    if not served:
        return [leaf] if leaf else []
    return [item if isinstance(item, bytes) else item.public_bytes(ssl._ssl.ENCODING_DER) for item in served]  # type: ignore[attr-defined]


@functools.lru_cache(maxsize=32)
def _verifying_context(ca_bundle: str | None) -> ssl.SSLContext:
    # Cached: loading the system store costs milliseconds, and one context serves any number of handshakes.
    if ca_bundle is None:
        return ssl.create_default_context()
    try:
        return ssl.create_default_context(cadata=ca_bundle)
    except ssl.SSLError as exc:
        raise CheckError(ErrorKind.TLS, f"config.caBundle holds no usable PEM certificate: {exc}") from exc


@functools.cache
def _reading_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def evaluate(
    handshake: Handshake, server_name: str, expiry_threshold_days: int, now: datetime
) -> CheckResult:
    """DOWN when OpenSSL rejected the certificate; UP with a cert_expiring warning within the threshold."""
    if not handshake.chain:
        raise CheckError(ErrorKind.TLS, f"{handshake.endpoint} sent no certificate")
    try:
        chain = [x509.load_der_x509_certificate(der) for der in handshake.chain]
    except ValueError as exc:
        raise CheckError(ErrorKind.TLS, f"{handshake.endpoint} sent a malformed certificate: {exc}") from exc
    leaf = chain[0]
    not_after = leaf.not_valid_after_utc
    seconds_left = (not_after - now).total_seconds()
    details: dict[str, Any] = {
        **describe_certificate(leaf),
        "days_until_expiry": int(seconds_left // 86400),
        "hostname": server_name,
        "hostname_match": hostname_matches(leaf, server_name),
        "chain_trusted": handshake.verify_error is None or chain_was_trusted(handshake.verify_error[0]),
        "verify_error": handshake.verify_error[1] if handshake.verify_error else None,
        "chain": [describe_certificate(cert, brief=True) for cert in chain],
        "protocol": handshake.protocol,
        "cipher": handshake.cipher,
        "endpoint": handshake.endpoint,
    }
    status, kind, message = Status.UP, None, None
    if handshake.verify_error is not None:
        status, kind = Status.DOWN, ErrorKind.TLS
        message = verify_failure_message(handshake.verify_error, leaf, server_name, now)
    elif seconds_left <= expiry_threshold_days * 86400:
        kind = ErrorKind.CERT_EXPIRING
        message = (
            f"certificate for {server_name} expires in {details['days_until_expiry']} days, "
            f"on {not_after:%Y-%m-%d %H:%M} UTC (threshold: {expiry_threshold_days} days)"
        )
    return CheckResult(
        status=status, response_time_ms=0.0, error_kind=kind, error_message=message, details=details
    )


def _failure(kind: ErrorKind, message: str, started: float, dns_ms: float | None) -> CheckResult:
    elapsed_ms = (time.perf_counter() - started) * 1000
    return CheckResult(
        status=Status.DOWN,
        response_time_ms=elapsed_ms,
        error_kind=kind,
        error_message=message,
        timings=Timings(dns=dns_ms or None, total=elapsed_ms),
    )


if TYPE_CHECKING:  # mypy holds this module to the check module contract in agent/checks/base.py
    from agent.checks import ssl as _module
    from agent.checks.base import CheckModule

    _contract: CheckModule = _module

"""DNS check: one dnspython query to the configured or system resolver, the answer held to expectations."""

from __future__ import annotations

import asyncio
import ipaddress
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import dns.asyncquery
import dns.asyncresolver
import dns.exception
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdatatype

from agent.checks._net import resolve, split_host_port
from agent.checks.base import CheckError, CheckResult, CheckSpec, ErrorKind, Status, Timings

__all__ = ["RECORD_TYPES", "DnsSettings", "run"]

RECORD_TYPES = ("A", "AAAA", "CNAME", "MX", "NS", "TXT", "SOA", "CAA", "SRV")
# Types whose text holds names or addresses: compared case-insensitively, trailing dots ignored.
_NAME_TYPES = frozenset({"A", "AAAA", "CNAME", "MX", "NS", "SOA", "SRV"})
# The EDNS buffer size of DNS Flag Day 2020: avoids IP fragmentation; larger answers come back truncated.
_EDNS_PAYLOAD = 1232


@dataclass(frozen=True)
class DnsSettings:
    record_type: str = "A"
    resolver: str | None = None
    protocol: str = "UDP"
    expected_values: tuple[str, ...] = field(default=())
    match_mode: str = "contains"
    expected_rcode: str = "NOERROR"

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> DnsSettings:
        # The API validated every key (docs/monitor-config.md); only defaults are filled in here.
        return cls(
            record_type=str(config.get("recordType", "A")).upper(),
            resolver=config.get("resolver") or None,
            protocol=str(config.get("protocol", "UDP")).upper(),
            expected_values=tuple(str(value) for value in config.get("expectedValues") or ()),
            match_mode=str(config.get("matchMode", "contains")).lower(),
            expected_rcode=str(config.get("expectedRcode", "NOERROR")).upper(),
        )


@dataclass(frozen=True, slots=True)
class _Answer:
    response: dns.message.Message
    server: str
    protocol: str  # what finally answered: UDP, or TCP (asked for, or after a truncated UDP answer)
    truncated_retry: bool
    elapsed_ms: float


async def run(check: CheckSpec) -> CheckResult:
    settings = DnsSettings.from_config(check.config)
    started = time.perf_counter()
    try:
        async with asyncio.timeout(check.timeout_s):
            servers = await _nameservers(settings.resolver)
            answer = await _ask_in_turn(check.target, settings, servers, check.timeout_s)
    except CheckError as exc:
        return _failure(exc.kind, exc.message, started)
    except TimeoutError:
        message = f"no DNS answer for {check.target} within the monitor timeout of {check.timeout_s:g} s"
        return _failure(ErrorKind.TIMEOUT, message, started)
    result = evaluate(check.target, settings, answer.response)
    result.response_time_ms = answer.elapsed_ms
    result.timings = Timings(dns=answer.elapsed_ms, total=(time.perf_counter() - started) * 1000)
    result.details.update(
        resolver=answer.server,
        protocol=answer.protocol,
        truncated_retry=answer.truncated_retry,
        resolution_ms=answer.elapsed_ms,
    )
    return result


async def _nameservers(resolver: str | None) -> list[tuple[str, int]]:
    if resolver is None:
        # Reading resolv.conf per check picks up changes (DHCP, containers) without a restart.
        system = dns.asyncresolver.Resolver(configure=True)
        return [(str(server), system.port) for server in system.nameservers]
    host, port = split_host_port(resolver, 53)
    addresses, _ = await resolve(host)
    return [(address, port) for address in addresses]


async def _ask_in_turn(
    target: str, settings: DnsSettings, servers: list[tuple[str, int]], timeout_s: float
) -> _Answer:
    """Ask each server in turn, moving on only when one is unreachable or silent; the last failure wins."""
    if not servers:
        raise CheckError(ErrorKind.DNS, "no resolver configured: /etc/resolv.conf lists no nameserver")
    try:
        qname = dns.name.from_text(target)
    except dns.exception.DNSException as exc:
        raise CheckError(ErrorKind.DNS, f"{target!r} is not a valid DNS name: {exc}") from exc
    query = dns.message.make_query(qname, settings.record_type, use_edns=0, payload=_EDNS_PAYLOAD)
    per_server_s = timeout_s / len(servers)
    failure: CheckError | None = None
    for address, port in servers:
        try:
            return await _ask(query, address, port, settings.protocol, per_server_s)
        except CheckError as exc:
            if exc.kind not in (ErrorKind.TIMEOUT, ErrorKind.CONNECTION):
                raise
            failure = exc
    assert failure is not None
    raise failure


async def _ask(
    query: dns.message.Message, address: str, port: int, protocol: str, timeout_s: float
) -> _Answer:
    server = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
    started = time.perf_counter()
    try:
        if protocol == "TCP":
            response = await dns.asyncquery.tcp(query, address, timeout=timeout_s, port=port)
            used_tcp = True
        else:
            response, used_tcp = await dns.asyncquery.udp_with_fallback(
                query, address, timeout=timeout_s, port=port
            )
    except dns.exception.Timeout as exc:
        raise CheckError(
            ErrorKind.TIMEOUT, f"resolver {server} did not answer within {timeout_s:g} s"
        ) from exc
    except OSError as exc:
        raise CheckError(
            ErrorKind.CONNECTION, f"cannot reach resolver {server}: {exc.strerror or exc}"
        ) from exc
    except EOFError as exc:  # dnspython's signal that a TCP resolver hung up mid-answer
        raise CheckError(ErrorKind.CONNECTION, f"resolver {server} closed the connection") from exc
    except dns.exception.DNSException as exc:
        raise CheckError(ErrorKind.DNS, f"resolver {server} sent a malformed answer: {exc}") from exc
    elapsed_ms = (time.perf_counter() - started) * 1000
    return _Answer(
        response=response,
        server=server,
        protocol="TCP" if used_tcp else "UDP",
        truncated_retry=used_tcp and protocol != "TCP",
        elapsed_ms=elapsed_ms,
    )


def evaluate(target: str, settings: DnsSettings, response: dns.message.Message) -> CheckResult:
    """Compare a response's rcode and answers of the wanted type with the settings' expectations."""
    rdtype = dns.rdatatype.from_text(settings.record_type)
    rcode = dns.rcode.to_text(response.rcode())
    answers = [_text(rdata) for rrset in response.answer if rrset.rdtype == rdtype for rdata in rrset]
    ttls = [rrset.ttl for rrset in response.answer if rrset.rdtype == rdtype]
    details: dict[str, Any] = {
        "record_type": settings.record_type,
        "rcode": rcode,
        "answers": answers,
        "ttl": min(ttls) if ttls else None,
    }
    question = f"{target} {settings.record_type}"
    problem: tuple[ErrorKind, str] | None = None
    if rcode != settings.expected_rcode:
        # A failed lookup (NXDOMAIN, SERVFAIL) is a resolution failure; an unexpected success, a wrong answer.
        kind = ErrorKind.DNS_ANSWER if rcode == "NOERROR" else ErrorKind.DNS
        problem = kind, f"{question}: expected rcode {settings.expected_rcode}, got {rcode}"
    elif rcode == "NOERROR" and not answers:
        problem = ErrorKind.DNS_ANSWER, f"{question}: no {settings.record_type} records in the answer"
    elif settings.expected_values:
        problem = _compare(question, settings, answers)
    return CheckResult(
        status=Status.UP if problem is None else Status.DOWN,
        response_time_ms=0.0,
        error_kind=problem[0] if problem else None,
        error_message=problem[1] if problem else None,
        details=details,
    )


def _compare(question: str, settings: DnsSettings, answers: list[str]) -> tuple[ErrorKind, str] | None:
    got = {_normalize(answer, settings.record_type) for answer in answers}
    wanted = {_normalize(value, settings.record_type) for value in settings.expected_values}
    if settings.match_mode == "exact":
        if got == wanted:
            return None
        return ErrorKind.DNS_ANSWER, f"{question}: expected exactly {sorted(wanted)}, got {sorted(got)}"
    missing = wanted - got
    if not missing:
        return None
    return (
        ErrorKind.DNS_ANSWER,
        f"{question}: expected {sorted(missing)} among the answers, got {sorted(got)}",
    )


def _text(rdata: dns.rdata.Rdata) -> str:
    if rdata.rdtype == dns.rdatatype.TXT:
        # What people write in expectedValues is the record's content, not its quoted zone-file form.
        return b"".join(rdata.strings).decode("utf-8", errors="replace")  # type: ignore[attr-defined]
    return rdata.to_text()


def _normalize(value: str, record_type: str) -> str:
    value = value.strip()
    if record_type == "TXT":
        return value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value
    if record_type in ("A", "AAAA"):
        try:
            return str(ipaddress.ip_address(value))  # so 2001:DB8:0::1 equals 2001:db8::1
        except ValueError:
            return value
    tokens = value.split()
    if record_type in _NAME_TYPES:
        tokens = [token.lower() if token == "." else token.rstrip(".").lower() for token in tokens]
    return " ".join(tokens)


def _failure(kind: ErrorKind, message: str, started: float) -> CheckResult:
    elapsed_ms = (time.perf_counter() - started) * 1000
    return CheckResult(
        status=Status.DOWN,
        response_time_ms=elapsed_ms,
        error_kind=kind,
        error_message=message,
        timings=Timings(total=elapsed_ms),
    )


if TYPE_CHECKING:  # mypy holds this module to the check module contract in agent/checks/base.py
    from agent.checks import dns as _module
    from agent.checks.base import CheckModule

    _contract: CheckModule = _module

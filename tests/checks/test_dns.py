"""DNS check against a real DNS server on loopback (tests/checks/dns_server.py), over UDP and TCP."""

from __future__ import annotations

import pytest

from agent.checks import dns as dns_check
from agent.checks._net import split_host_port
from agent.checks.base import CheckSpec, ErrorKind, Status
from tests.checks.dns_server import LoopbackDnsServer


def dns_spec(server: LoopbackDnsServer, name: str, timeout_s: float = 3.0, **config: object) -> CheckSpec:
    return CheckSpec(
        monitor_id="m-dns",
        type="DNS",
        target=name,
        interval_s=60,
        timeout_s=timeout_s,
        config={"resolver": server.address, **config},
    )


@pytest.mark.parametrize(
    ("record_type", "name", "expected"),
    [
        ("A", "example.test", ["192.0.2.10", "192.0.2.11"]),
        ("AAAA", "example.test", ["2001:db8::10"]),
        ("CNAME", "www.example.test", ["example.test."]),
        ("MX", "example.test", ["10 mail.example.test.", "20 mail2.example.test."]),
        ("NS", "example.test", ["ns1.example.test.", "ns2.example.test."]),
        ("TXT", "example.test", ["v=spf1 -all"]),
        (
            "SOA",
            "example.test",
            ["ns1.example.test. hostmaster.example.test. 2024010101 7200 3600 1209600 300"],
        ),
        ("CAA", "example.test", ['0 issue "ca.example.net"']),
        ("SRV", "_sip._tcp.example.test", ["10 60 5060 sip.example.test."]),
    ],
)
async def test_it_resolves_each_record_type(
    dns_server: LoopbackDnsServer, record_type: str, name: str, expected: list[str]
) -> None:
    result = await dns_check.run(dns_spec(dns_server, name, recordType=record_type))

    assert result.status is Status.UP, result.error_message
    assert sorted(result.details["answers"]) == expected
    assert result.details["rcode"] == "NOERROR"
    assert result.details["ttl"] == 300
    assert result.details["resolver"] == dns_server.address
    assert result.details["protocol"] == "UDP"
    assert result.timings.dns == result.response_time_ms == result.details["resolution_ms"]
    assert result.timings.total is not None and result.timings.total >= result.response_time_ms


async def test_it_follows_a_cname_to_the_wanted_type(dns_server: LoopbackDnsServer) -> None:
    result = await dns_check.run(dns_spec(dns_server, "www.example.test", expectedValues=["192.0.2.10"]))

    assert result.status is Status.UP, result.error_message
    assert sorted(result.details["answers"]) == ["192.0.2.10", "192.0.2.11"]


async def test_it_matches_contains_ignoring_case_and_trailing_dots(dns_server: LoopbackDnsServer) -> None:
    spec = dns_spec(
        dns_server,
        "example.test",
        recordType="MX",
        expectedValues=["10 MAIL.example.test"],
        matchMode="contains",
    )
    result = await dns_check.run(spec)

    assert result.status is Status.UP, result.error_message


async def test_it_reports_a_missing_expected_value(dns_server: LoopbackDnsServer) -> None:
    result = await dns_check.run(dns_spec(dns_server, "example.test", expectedValues=["192.0.2.99"]))

    assert result.status is Status.DOWN
    assert result.error_kind is ErrorKind.DNS_ANSWER
    assert result.error_message == (
        "example.test A: expected ['192.0.2.99'] among the answers, got ['192.0.2.10', '192.0.2.11']"
    )


async def test_it_matches_exact_sets(dns_server: LoopbackDnsServer) -> None:
    def exact(*values: str) -> CheckSpec:
        return dns_spec(
            dns_server, "example.test", matchMode="exact", recordType="AAAA", expectedValues=values
        )

    same = await dns_check.run(exact("2001:DB8:0::10"))
    superset = await dns_check.run(exact("2001:db8::10", "2001:db8::11"))

    assert same.status is Status.UP, same.error_message
    assert superset.status is Status.DOWN
    assert superset.error_kind is ErrorKind.DNS_ANSWER
    assert superset.error_message is not None and "expected exactly" in superset.error_message


async def test_it_reports_nxdomain(dns_server: LoopbackDnsServer) -> None:
    result = await dns_check.run(dns_spec(dns_server, "nope.example.test"))

    assert result.status is Status.DOWN
    assert result.error_kind is ErrorKind.DNS
    assert result.details["rcode"] == "NXDOMAIN"
    assert result.error_message == "nope.example.test A: expected rcode NOERROR, got NXDOMAIN"


async def test_it_is_up_when_nxdomain_is_expected(dns_server: LoopbackDnsServer) -> None:
    result = await dns_check.run(dns_spec(dns_server, "nope.example.test", expectedRcode="NXDOMAIN"))

    assert result.status is Status.UP, result.error_message
    assert result.details["answers"] == []


async def test_it_reports_an_unexpected_success(dns_server: LoopbackDnsServer) -> None:
    result = await dns_check.run(dns_spec(dns_server, "example.test", expectedRcode="NXDOMAIN"))

    assert result.status is Status.DOWN
    assert result.error_kind is ErrorKind.DNS_ANSWER


async def test_it_reports_servfail(dns_server: LoopbackDnsServer) -> None:
    result = await dns_check.run(dns_spec(dns_server, "servfail.example.test"))

    assert result.status is Status.DOWN
    assert result.error_kind is ErrorKind.DNS
    assert result.details["rcode"] == "SERVFAIL"


async def test_it_reports_an_empty_answer(dns_server: LoopbackDnsServer) -> None:
    result = await dns_check.run(dns_spec(dns_server, "ns1.example.test", recordType="MX"))

    assert result.status is Status.DOWN
    assert result.error_kind is ErrorKind.DNS_ANSWER
    assert result.error_message == "ns1.example.test MX: no MX records in the answer"


@pytest.mark.parametrize("protocol", ["UDP", "TCP"])
async def test_it_times_out_on_a_silent_server(dns_server: LoopbackDnsServer, protocol: str) -> None:
    result = await dns_check.run(
        dns_spec(dns_server, "silent.example.test", timeout_s=0.3, protocol=protocol)
    )

    assert result.status is Status.DOWN
    assert result.error_kind is ErrorKind.TIMEOUT
    assert 250 <= result.response_time_ms < 2000


async def test_it_queries_over_tcp(dns_server: LoopbackDnsServer) -> None:
    result = await dns_check.run(dns_spec(dns_server, "example.test", protocol="TCP"))

    assert result.status is Status.UP, result.error_message
    assert result.details["protocol"] == "TCP"
    assert result.details["truncated_retry"] is False
    assert dns_server.transports_for("example.test.") == ["TCP"]


async def test_it_falls_back_to_tcp_on_a_truncated_answer(dns_server: LoopbackDnsServer) -> None:
    result = await dns_check.run(dns_spec(dns_server, "big.example.test", recordType="TXT"))

    assert result.status is Status.UP, result.error_message
    assert result.details["protocol"] == "TCP"
    assert result.details["truncated_retry"] is True
    assert len(result.details["answers"][0]) == 40 * 200
    assert dns_server.transports_for("big.example.test.") == ["UDP", "TCP"]


async def test_it_reports_a_refused_tcp_connection(dns_server: LoopbackDnsServer) -> None:
    await dns_server.stop()
    result = await dns_check.run(dns_spec(dns_server, "example.test", protocol="TCP"))

    assert result.status is Status.DOWN
    assert result.error_kind is ErrorKind.CONNECTION
    assert result.error_message is not None and dns_server.address in result.error_message


@pytest.mark.parametrize(
    ("resolver", "expected"),
    [
        ("192.0.2.53", ("192.0.2.53", 53)),
        ("192.0.2.53:5353", ("192.0.2.53", 5353)),
        ("[2001:db8::53]:5353", ("2001:db8::53", 5353)),
        ("[2001:db8::53]", ("2001:db8::53", 53)),
        ("2001:db8::53", ("2001:db8::53", 53)),
        ("dns.example.test:5353", ("dns.example.test", 5353)),
    ],
)
def test_it_parses_resolver_addresses(resolver: str, expected: tuple[str, int]) -> None:
    assert split_host_port(resolver, 53) == expected

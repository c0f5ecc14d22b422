"""A real DNS server for tests: answers from a dnspython zone over UDP and TCP on one loopback port.

Names with a behaviour: `silent.` never answers, `servfail.` answers SERVFAIL, and `big.` answers
over UDP with the TC bit and no records, so a client must retry over TCP to read it.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.rrset
import dns.zone

ZONE_TEXT = """
$ORIGIN example.test.
$TTL 300
@         SOA   ns1 hostmaster 2024010101 7200 3600 1209600 300
@         NS    ns1
@         NS    ns2
@         A     192.0.2.10
@         A     192.0.2.11
@         AAAA  2001:db8::10
@         MX    10 mail
@         MX    20 mail2
@         TXT   "v=spf1 -all"
@         CAA   0 issue "ca.example.net"
www       CNAME @
_sip._tcp SRV   10 60 5060 sip
ns1       A     192.0.2.53
mail      A     192.0.2.25
big       TXT   {big_txt}
"""
# Forty 200-byte strings: far beyond a 1232-byte UDP answer, so only TCP can carry it.
BIG_TXT = " ".join(f'"{index:03d}{"x" * 197}"' for index in range(40))


class LoopbackDnsServer:
    def __init__(self, zone: dns.zone.Zone) -> None:
        self.zone = zone
        self.host = "127.0.0.1"
        self.port = 0
        self.queries: list[tuple[str, str, str]] = []  # (transport, name, type), in arrival order
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        # UDP takes a free port first; TCP then binds the same number, retried if someone holds it.
        for _ in range(20):
            self._udp, _ = await loop.create_datagram_endpoint(
                lambda: _UdpProtocol(self), local_addr=(self.host, 0)
            )
            self.port = self._udp.get_extra_info("sockname")[1]
            try:
                self._tcp = await asyncio.start_server(self._serve_tcp, self.host, self.port)
            except OSError as exc:
                self._udp.close()
                if exc.errno != errno.EADDRINUSE:
                    raise
                continue
            return
        raise RuntimeError("no port free for both UDP and TCP on loopback")

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
            await self._tcp.wait_closed()

    def transports_for(self, name: str) -> list[str]:
        return [transport for transport, qname, _ in self.queries if qname == name]

    def respond(self, wire: bytes, transport: str) -> bytes | None:
        query = dns.message.from_wire(wire)
        question = query.question[0]
        qname = question.name
        self.queries.append((transport, qname.to_text(), dns.rdatatype.to_text(question.rdtype)))
        label = qname.labels[0].decode() if qname.labels else ""
        if label == "silent":
            return None
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if label == "servfail":
            response.set_rcode(dns.rcode.SERVFAIL)
        elif label == "big" and transport == "UDP":
            response.flags |= dns.flags.TC
        else:
            self._answer(response, qname, question.rdtype)
        # TCP carries up to 64 KiB whatever the EDNS buffer size the client offered for UDP.
        return response.to_wire(max_size=65535 if transport == "TCP" else 0)

    def _answer(
        self, response: dns.message.Message, qname: dns.name.Name, rdtype: dns.rdatatype.RdataType
    ) -> None:
        # Follow CNAMEs inside the zone, the way an authoritative server answers.
        for _ in range(8):
            node = self.zone.get_node(qname)
            if node is None:
                if not response.answer:
                    response.set_rcode(dns.rcode.NXDOMAIN)
                return
            wanted = node.get_rdataset(dns.rdataclass.IN, rdtype)
            if wanted is not None:
                response.answer.append(_rrset(qname, wanted))
                return
            alias = node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.CNAME)
            if alias is None:
                return  # NODATA: NOERROR with an empty answer
            response.answer.append(_rrset(qname, alias))
            qname = next(iter(alias)).target  # type: ignore[attr-defined]

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                size = int.from_bytes(await reader.readexactly(2), "big")
                reply = self.respond(await reader.readexactly(size), "TCP")
                if reply is None:
                    await reader.read()  # hold the connection open without answering
                    break
                writer.write(len(reply).to_bytes(2, "big") + reply)
                await writer.drain()
        writer.close()


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: LoopbackDnsServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a datagram endpoint's transport

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        reply = self.server.respond(data, "UDP")
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)


def _rrset(name: dns.name.Name, rdataset: dns.rdataset.Rdataset) -> dns.rrset.RRset:
    return dns.rrset.from_rdata_list(name, rdataset.ttl, list(rdataset))


def build_zone() -> dns.zone.Zone:
    return dns.zone.from_text(ZONE_TEXT.format(big_txt=BIG_TXT), relativize=False)

"""Item 1: the outbound-URL guard on every URL the server itself fetches.

A census of control_plane/'s outbound call sites (tests/security/outbound_sites.py) must equal the
table below, each with why it is safe: a new HTTP client, SMTP send, socket, DNS look-up or Apprise
notifier fails this test until it goes through the guard or is shown to reach only an operator's
setting. Then behaviour: each channel kind's user-given URL to loopback, private, link-local or the
cloud metadata address is a 400 naming the field, and is refused again at send time. The guard's
own rules (every forbidden range, DNS rebinding, redirects, the connect-time resolver) are
tests/test_outbound_guard.py's; each HTTP sender's connect-time refusal is
tests/test_alert_senders.py::test_http_senders_never_reach_a_private_address_unless_allowed."""

from __future__ import annotations

import ast
import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from control_plane.alerts import channel_config
from control_plane.alerts.senders import apprise as apprise_sender
from control_plane.api.deps import Runtime
from control_plane.settings import Settings
from tests.alert_receivers import down_notification, sender_context
from tests.conftest import World
from tests.security.outbound_sites import PACKAGE, dotted, outbound_sites

GUARDED = "the guard's session: GuardedResolver at connect, IP literals and redirects checked per request"
SETTING = "reaches only an operator's setting, never a user's input"
SITES = {
    ("control_plane/alerts/guard.py", "aiohttp.ClientSession"): GUARDED,
    ("control_plane/alerts/guard.py", "aiohttp.TCPConnector"): GUARDED,
    ("control_plane/alerts/guard.py", "loop.getaddrinfo"): "the guard's own look-up (check_host)",
    ("control_plane/alerts/senders/apprise.py", "apprise.Apprise"): (
        "every host Apprise will reach (channel_config.apprise_hosts) checked by check_host first"
    ),
    ("control_plane/alerts/channel_config.py", "apprise.Apprise"): "parses URLs only: sends nothing",
    ("control_plane/alerts/senders/email.py", "aiosmtplib.send"): f"TRAXO_SMTP_HOST: {SETTING}",
    (
        "control_plane/integrations/revenuecat.py",
        "aiohttp.ClientSession",
    ): f"TRAXO_REVENUECAT_API_URL: {SETTING}",
    ("control_plane/status_pages/domains.py", "dns.asyncresolver.Resolver"): (
        f"asks TRAXO_DNS_RESOLVER (or the system's) for a TXT record: {SETTING}"
    ),
    ("control_plane/commands/addresses.py", "socket.socket"): "binds a probe of a port to listen on: no peer",
    ("control_plane/config_as_code/client.py", "aiohttp.ClientSession"): (
        "`traxo apply`, a command on the user's machine, calling the API the user names: not the server"
    ),
}


def test_every_outbound_call_site_is_accounted_for() -> None:
    found = outbound_sites()
    assert found - SITES.keys() == set(), "new outbound call sites: guard them, or add them here with why"
    assert SITES.keys() - found == set(), "gone: drop them from the table"


def _calls_in(module: str, name: str) -> list[ast.Call]:
    tree = ast.parse((PACKAGE.parent / module).read_text())
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call) and dotted(node.func) == name]


def _modules_calling(name: str) -> set[str]:
    return {
        str(path.relative_to(PACKAGE.parent))
        for path in PACKAGE.rglob("*.py")
        if _calls_in(str(path.relative_to(PACKAGE.parent)), name)
    }


def test_every_alert_send_gets_the_guard_s_session() -> None:
    """Senders make no session of their own (the census), and the contexts they are handed are
    made only where the session is outbound_session's."""
    assert _modules_calling("SendContext") == {
        "control_plane/alerts/worker.py",
        "control_plane/alerts/testing.py",
    }
    assert _modules_calling("outbound_session") == {
        "control_plane/alerts/worker.py",
        "control_plane/alerts/testing.py",
        "control_plane/alerts/job.py",
    }


def test_the_server_s_other_destinations_are_settings_not_input() -> None:
    """SMTP, RevenueCat, PagerDuty's endpoint and the DNS resolver come from Settings, and no
    request body of the API can name one: the OpenAPI document has no such property."""
    email = _calls_in("control_plane/alerts/senders/email.py", "aiosmtplib.send")
    assert [ast.unparse(k.value) for c in email for k in c.keywords if k.arg == "hostname"] == [
        "settings.smtp_host"
    ]
    billing = (PACKAGE / "services" / "billing.py").read_text()
    assert "RevenueCatClient(\n        settings.revenuecat_api_url," in billing
    assert "context.settings.pagerduty_events_url" in (PACKAGE / "alerts/senders/pagerduty.py").read_text()
    assert "nameserver=runtime.settings.dns_resolver" in (PACKAGE / "api/routes/status_pages.py").read_text()
    assert channel_config.FIELDS["EMAIL"] == ({"recipients"}, set())  # no server of the user's
    assert channel_config.FIELDS["PAGERDUTY"] == ({"routingKey"}, set())
    fields = set(Settings.model_fields)
    assert {"smtp_host", "revenuecat_api_url", "pagerduty_events_url", "dns_resolver"} <= fields


def _property_names(node: object) -> set[str]:
    if isinstance(node, dict):
        names = set(node.get("properties", {})) if isinstance(node.get("properties"), dict) else set()
        return names.union(*(_property_names(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(_property_names(value) for value in node))
    return set()


async def test_no_request_schema_names_a_server_destination(api: httpx.AsyncClient) -> None:
    names = {name.lower() for name in _property_names((await api.get("/api/openapi.json")).json())}
    assert "url" in names  # a webhook channel's, its user's own: the walk sees properties
    for setting in ("smtphost", "smtp", "smtpserver", "nameserver", "resolver", "eventsurl", "apiurl"):
        assert setting not in names, setting


# The targets a user's URL may not reach: loopback, private, link-local, cloud metadata (also as an
# IPv4-mapped IPv6 address and as a bare number), and a name resolving to loopback.
TARGETS = {
    "127.0.0.1": "127.0.0.1 is a private",
    "10.0.0.1": "10.0.0.1 is a private",
    "169.254.169.254": "169.254.169.254 is a private",
    "[fe80::1]": "is a private",
    "[::ffff:169.254.169.254]": "is a private",
    "localhost": "localhost resolves to",
}


def _channel(kind: str, host: str) -> tuple[dict[str, object], str]:
    if kind == "WEBHOOK":
        return {"url": f"http://{host}/latest/meta-data/"}, "config.url"
    if kind == "SLACK":
        return {"webhookUrl": f"https://{host}/services/T/B/C"}, "config.webhookUrl"
    if kind == "APPRISE_JSON":
        return {"urls": [f"json://{host}/hook"]}, "config.urls[0]"
    return {"urls": [f"mailto://ops:pw@example.com?smtp={host}&to=ops@example.com"]}, "config.urls[0]"


@pytest.mark.parametrize("kind", ["WEBHOOK", "SLACK", "APPRISE_JSON", "APPRISE_SMTP"])
async def test_each_kind_refuses_an_inward_url_when_saved(
    api: httpx.AsyncClient, world: World, kind: str
) -> None:
    for host, reason in TARGETS.items():
        config, field = _channel(kind, host)
        body = {"name": "Ops", "type": kind.partition("_")[0], "config": config}
        created = await api.post("/api/alert-channels", json=body, headers=world.alice.headers)
        assert created.status_code == 400, (host, created.text)
        error = created.json()["error"]
        assert error.startswith(f"{field}: ") and reason in error, (host, error)
    listed = await api.get("/api/alert-channels", headers=world.alice.headers)
    assert listed.json()["data"] == []


@pytest.mark.parametrize(
    "url",
    [
        "json://2130706433/hook",
        "json://0x7f000001/hook",
        "json://2852039166/hook",
        # Services with a hosted API of their own that also take a self-hosted server's host: a
        # number there is that server's address (they were let through for having a hosted API).
        "notica://2130706433/token",
        "pushdeer://2852039166/PDU1234",
    ],
)
async def test_an_address_written_as_a_number_is_refused_too(
    api: httpx.AsyncClient, world: World, url: str
) -> None:
    """getaddrinfo reads 2130706433 as 127.0.0.1 (and 2852039166 as 169.254.169.254): refused when
    the channel is saved and again before a send."""
    body = {"name": "Ops", "type": "APPRISE", "config": {"urls": [url]}}
    created = await api.post("/api/alert-channels", json=body, headers=world.alice.headers)
    assert created.status_code == 400, created.text
    assert "a private, loopback or reserved address" in created.json()["error"]
    async with sender_context(alerts_allow_private_urls=False) as context:
        assert await apprise_sender.refused_destination([url], context) is not None


async def test_a_hosted_service_s_token_is_not_taken_for_a_host(api: httpx.AsyncClient, world: World) -> None:
    """A Telegram bot token's id reads as a number (4000000000: 238.107.40.0, reserved) and a Discord
    webhook's id too; Apprise sends those to api.telegram.org and discord.com, never to the number.
    Refusing them made such channels undeliverable whenever private URLs are refused (the default)."""
    urls = ["tgram://4000000000:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/12345", "discord://123456/abcdef"]
    settings = Settings(database_url="sqlite+aiosqlite://", redis_url=None)
    async with sender_context(alerts_allow_private_urls=False) as context:
        assert await apprise_sender.refused_destination(urls, context) is None
    await channel_config.validate_channel_config("APPRISE", {"urls": urls}, settings)


class ConnectionCounter:
    """A TCP listener on 127.0.0.1 that counts who connects (and says nothing back)."""

    def __init__(self) -> None:
        self.connections = 0
        self.port = 0

    async def _accept(self, _reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.close()


@pytest.fixture
async def counter() -> AsyncIterator[ConnectionCounter]:
    listener = ConnectionCounter()
    server = await asyncio.start_server(listener._accept, "127.0.0.1", 0)
    listener.port = server.sockets[0].getsockname()[1]
    async with server:
        yield listener


async def test_apprise_never_connects_inward_when_sending(counter: ConnectionCounter) -> None:
    """At send time (a channel saved while private URLs were allowed, or its host re-pointed since):
    the SMTP server a mailto URL names, and a self-hosted service's host, are checked first."""
    urls = [
        f"mailto://ops:pw@example.com?smtp=127.0.0.1&port={counter.port}&to=ops@example.com&mode=insecure",
        f"json://127.0.0.1:{counter.port}/hook",
    ]
    for url in urls:
        async with sender_context(alerts_allow_private_urls=False, alert_send_timeout_seconds=2) as context:
            outcome = await apprise_sender.send({"urls": [url]}, down_notification(), context)
        assert (outcome.delivered, outcome.retryable) == (False, False), (url, outcome)
        assert outcome.error is not None and "127.0.0.1 is a private" in outcome.error, outcome.error
    assert counter.connections == 0


async def test_a_channel_test_delivery_is_refused_at_send_time(runtime: Runtime, world: World) -> None:
    """A channel saved while private URLs were allowed: its test delivery, once they are not, is
    refused by the guard and reaches nothing."""
    from tests.security.support import client_with

    async with client_with(runtime, alerts_allow_private_urls=True) as open_api:
        body = {"name": "Ops", "type": "WEBHOOK", "config": {"url": "http://169.254.169.254/latest/"}}
        created = await open_api.post("/api/alert-channels", json=body, headers=world.alice.headers)
        assert created.status_code == 201, created.text
    async with client_with(runtime) as strict_api:
        channel_id = created.json()["data"]["id"]
        tested = await strict_api.post(f"/api/alert-channels/{channel_id}/test", headers=world.alice.headers)
    result = tested.json()["data"]
    assert result["delivered"] is False and "169.254.169.254" in result["error"], result
    assert "refused" in result["error"]

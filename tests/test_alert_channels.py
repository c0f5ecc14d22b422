"""/api/alert-channels: the reference's shapes, config validation per type, masking on every read,
the one-time webhook secret, tenancy and roles, monitors' alertChannelIds, the test notification
against a real local receiver (and the guard refusing it), and a channel's delivery attempts."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from standardwebhooks import Webhook

from control_plane.api.app import create_app
from control_plane.api.deps import Runtime
from control_plane.db import Database
from control_plane.models import AlertChannel, AlertDelivery, DeliveryAttempt, Monitor
from control_plane.settings import Settings
from tests.alert_receivers import http_recorder
from tests.clock import MovableClock
from tests.monitor_tools import create_monitor
from tests.spec import assert_shape, example

SLACK_URL = "https://hooks.slack.com/services/T0000000/B0000000/XXXXXXXXXXXXabcd"
ROUTING_KEY = "R0123456789abcdefghijABCDEFGwxyz"
SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
CHANNELS: dict[str, dict[str, Any]] = {
    "EMAIL": {"recipients": ["ops@example.com", "Oncall@Example.com"]},
    "SLACK": {"webhookUrl": SLACK_URL},
    "WEBHOOK": {"url": "https://example.com/webhook", "secret": SECRET},
    "PAGERDUTY": {"routingKey": ROUTING_KEY},
    "APPRISE": {"urls": ["tgram://123456789:AAHbottokenbottoken/987654", "ntfy://ntfy.sh/my-topic-1234"]},
}
MASKED: dict[str, dict[str, Any]] = {
    "EMAIL": {"recipients": ["ops@example.com", "Oncall@example.com"]},
    "SLACK": {"webhookUrl": "https://hooks.slack.com/...abcd"},
    "WEBHOOK": {"url": "https://example.com/webhook", "secret": f"whsec_...{SECRET[-4:]}"},
    "PAGERDUTY": {"routingKey": "...wxyz"},
    "APPRISE": {"urls": ["tgram://...7654", "ntfy://ntfy.sh/...1234"]},
}


async def create_channel(
    api: httpx.AsyncClient, headers: dict[str, str], channel_type: str = "SLACK", **fields: Any
) -> dict[str, Any]:
    body = {"name": f"{channel_type} channel", "type": channel_type, "config": CHANNELS[channel_type]}
    response = await api.post("/api/alert-channels", json={**body, **fields}, headers=headers)
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


async def stored_config(database: Database, channel_id: str) -> dict[str, Any]:
    async with database.session() as session:
        channel = await session.get(AlertChannel, channel_id)
        assert channel is not None
        return channel.config


@pytest.fixture
async def open_api(
    database: Database, clock: MovableClock, settings: Settings
) -> AsyncIterator[httpx.AsyncClient]:
    """The API of a server with TRAXO_ALERTS_ALLOW_PRIVATE_URLS=true, on the same database, so
    channels may point at the loopback receivers of these tests."""
    allowed = Settings(database_url=settings.database_url, redis_url=None, alerts_allow_private_urls=True)
    app = create_app(allowed, Runtime.build(allowed, database, clock=clock))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://traxo.test") as client:
        yield client


# --- the reference's shapes ---------------------------------------------------------------------


async def test_create_list_delete_in_the_reference_shapes(api, world):
    response = await api.post(
        "/api/alert-channels",
        json={"name": "Engineering Slack", "type": "SLACK", "config": {"webhookUrl": SLACK_URL}},
        headers=world.alice.headers,
    )
    assert response.status_code == 201
    body = response.json()
    assert_shape(body, example("POST", "/api/alert-channels"))
    created = body["data"]
    assert created["id"].startswith("ac_")
    assert created | {"id": None, "createdAt": None} == {
        "id": None,
        "name": "Engineering Slack",
        "type": "SLACK",
        "config": {"webhookUrl": "https://hooks.slack.com/...abcd"},
        "isActive": True,
        "orgId": world.org_a,
        "createdAt": None,
    }

    listed = await api.get("/api/alert-channels", headers=world.vera.headers)
    assert listed.status_code == 200
    assert_shape(listed.json(), example("GET", "/api/alert-channels"))
    assert listed.json()["data"] == [created]

    one = await api.get(f"/api/alert-channels/{created['id']}", headers=world.vera.headers)
    assert one.status_code == 200 and one.json() == {"data": created}

    deleted = await api.delete(f"/api/alert-channels/{created['id']}", headers=world.adam.headers)
    assert deleted.status_code == 200
    assert deleted.json() == example("DELETE", "/api/alert-channels/:id")
    assert (await api.get("/api/alert-channels", headers=world.alice.headers)).json() == {"data": []}
    gone = await api.get(f"/api/alert-channels/{created['id']}", headers=world.alice.headers)
    assert gone.status_code == 404 and gone.json() == {"error": "Alert channel not found"}


async def test_the_reference_example_request_is_accepted(api, world):
    # The reference's own example ("https://hooks.slack.com/services/xxx"): a URL too short to show
    # any of its secret part.
    response = await api.post(
        "/api/alert-channels",
        json={
            "name": "Engineering Slack",
            "type": "SLACK",
            "config": {"webhookUrl": "https://hooks.slack.com/services/xxx"},
        },
        headers=world.alice.headers,
    )
    assert response.status_code == 201, response.text
    assert response.json()["data"]["config"] == {"webhookUrl": "https://hooks.slack.com/.../xxx"}


@pytest.mark.parametrize("channel_type", sorted(CHANNELS))
async def test_every_type_is_stored_whole_and_read_masked(api, world, database, channel_type):
    created = await create_channel(api, world.alice.headers, channel_type, enabled=False)
    assert created["type"] == channel_type and created["isActive"] is False
    assert created["config"] == MASKED[channel_type]
    stored = await stored_config(database, created["id"])
    expected = dict(CHANNELS[channel_type])
    if channel_type == "EMAIL":
        expected = MASKED["EMAIL"]  # normalized by email-validator (the domain lowercased)
    assert stored == expected
    for response in (
        await api.get(f"/api/alert-channels/{created['id']}", headers=world.vera.headers),
        await api.patch(
            f"/api/alert-channels/{created['id']}", json={"name": "Renamed"}, headers=world.alice.headers
        ),
    ):
        assert response.status_code == 200, response.text
        assert response.json()["data"]["config"] == MASKED[channel_type]
    listed = (await api.get("/api/alert-channels", headers=world.alice.headers)).json()["data"]
    assert [c["config"] for c in listed] == [MASKED[channel_type]]
    for secret in ("XXXXXXXXXXXXabcd", ROUTING_KEY, SECRET, "AAHbottokenbottoken"):
        assert secret not in str(listed)


async def test_a_generated_webhook_secret_is_shown_whole_once(api, world, database):
    created = await create_channel(
        api, world.alice.headers, "WEBHOOK", config={"url": "https://example.com/hook"}
    )
    secret = created["config"]["secret"]
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:], validate=True)) == 32
    assert (await stored_config(database, created["id"]))["secret"] == secret
    again = (await api.get(f"/api/alert-channels/{created['id']}", headers=world.alice.headers)).json()
    assert again["data"]["config"] == {"url": "https://example.com/hook", "secret": f"whsec_...{secret[-4:]}"}
    # Webhook(secret) accepts it: a Standard Webhooks secret.
    Webhook(secret)


async def test_patch_keeps_masked_secrets_and_replaces_sent_ones(api, world, database):
    webhook = await create_channel(api, world.alice.headers, "WEBHOOK")
    path = f"/api/alert-channels/{webhook['id']}"
    read = (await api.get(path, headers=world.alice.headers)).json()["data"]["config"]
    moved = {**read, "url": "https://example.org/new"}
    response = await api.patch(path, json={"config": moved}, headers=world.alice.headers)
    assert response.status_code == 200, response.text
    assert response.json()["data"]["config"] == {
        "url": "https://example.org/new",
        "secret": MASKED["WEBHOOK"]["secret"],
    }
    assert await stored_config(database, webhook["id"]) == {
        "url": "https://example.org/new",
        "secret": SECRET,
    }
    # Omitting the secret keeps it too; sending a new one replaces it.
    await api.patch(path, json={"config": {"url": "https://example.org/x"}}, headers=world.alice.headers)
    assert (await stored_config(database, webhook["id"]))["secret"] == SECRET
    new_secret = "whsec_" + base64.b64encode(b"n" * 24).decode()
    response = await api.patch(
        path,
        json={"config": {"url": "https://example.org/x", "secret": new_secret}},
        headers=world.alice.headers,
    )
    assert response.status_code == 200
    assert (await stored_config(database, webhook["id"]))["secret"] == new_secret

    for channel_type, changed in (
        ("SLACK", None),
        ("PAGERDUTY", None),
        ("APPRISE", {"urls": [MASKED["APPRISE"]["urls"][1], "json://example.com/hook"]}),
    ):
        channel = await create_channel(api, world.alice.headers, channel_type)
        path = f"/api/alert-channels/{channel['id']}"
        sent = changed or channel["config"]
        response = await api.patch(path, json={"config": sent}, headers=world.alice.headers)
        assert response.status_code == 200, response.text
        stored = await stored_config(database, channel["id"])
        if changed is None:
            assert stored == CHANNELS[channel_type]
        else:  # the masked URL kept whole, moved to its new place; the new one as sent
            assert stored == {"urls": [CHANNELS["APPRISE"]["urls"][1], "json://example.com/hook"]}


async def test_patch_name_and_active_switch(api, world, clock):
    channel = await create_channel(api, world.alice.headers)
    path = f"/api/alert-channels/{channel['id']}"
    clock.advance(timedelta(minutes=1))
    response = await api.patch(path, json={"name": "  Ops  ", "isActive": False}, headers=world.adam.headers)
    assert response.status_code == 200
    assert response.json()["data"] | {"config": None} == {
        **channel,
        "name": "Ops",
        "isActive": False,
        "config": None,
    }
    response = await api.patch(path, json={"enabled": True}, headers=world.adam.headers)
    assert response.json()["data"]["isActive"] is True
    response = await api.patch(path, json={"enabled": True, "isActive": False}, headers=world.adam.headers)
    assert response.status_code == 400
    assert response.json()["error"].startswith("enabled: contradicts isActive")


# --- validation ---------------------------------------------------------------------------------


def _long(n: int) -> str:
    return "x" * n


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"type": "SLACK", "config": CHANNELS["SLACK"]}, "name"),
        ({"name": "", "type": "SLACK", "config": CHANNELS["SLACK"]}, "name"),
        ({"name": _long(101), "type": "SLACK", "config": CHANNELS["SLACK"]}, "name"),
        ({"name": "bad\x1bname", "type": "SLACK", "config": CHANNELS["SLACK"]}, "name"),
        ({"name": "n", "type": "SMS", "config": {}}, "type"),
        ({"name": "n", "type": "SLACK"}, "config"),
        ({"name": "n", "type": "SLACK", "config": CHANNELS["SLACK"], "enabled": "yes"}, "enabled"),
        ({"name": "n", "type": "SLACK", "config": CHANNELS["SLACK"], "extra": 1}, "extra"),
        ({"name": "n", "type": "SLACK", "config": {}}, "config.webhookUrl: required"),
        ({"name": "n", "type": "SLACK", "config": {"webhookUrl": SLACK_URL, "x": 1}}, "config.x: unknown"),
        (
            {"name": "n", "type": "SLACK", "config": {"webhookUrl": "http://hooks.slack.com/x"}},
            "config.webhookUrl: must be an https URL",
        ),
        (
            {"name": "n", "type": "SLACK", "config": {"webhookUrl": 5}},
            "config.webhookUrl: must be a non-empty string",
        ),
        (
            {"name": "n", "type": "SLACK", "config": {"webhookUrl": "https://10.0.0.1/x"}},
            "config.webhookUrl: 10.0.0.1 is a private",
        ),
        (
            {"name": "n", "type": "EMAIL", "config": {"recipients": []}},
            "config.recipients: must be a list of 1-50",
        ),
        (
            {"name": "n", "type": "EMAIL", "config": {"recipients": ["a@example.com"] * 51}},
            "config.recipients: must be a list of 1-50",
        ),
        (
            {"name": "n", "type": "EMAIL", "config": {"recipients": "ops@example.com"}},
            "config.recipients: must be a list",
        ),
        (
            {"name": "n", "type": "EMAIL", "config": {"recipients": ["ops@example.com", "nope"]}},
            "config.recipients[1]: 'nope' is not a valid email",
        ),
        (
            {"name": "n", "type": "EMAIL", "config": {"recipients": ["a@example.com", "A@example.com"]}},
            "config.recipients: must not repeat",
        ),
        (
            {"name": "n", "type": "WEBHOOK", "config": {"url": "ftp://example.com/"}},
            "config.url: must be an http or https URL",
        ),
        (
            {"name": "n", "type": "WEBHOOK", "config": {"url": "http://localhost:8080/"}},
            "config.url: localhost resolves to",
        ),
        (
            {"name": "n", "type": "WEBHOOK", "config": {"url": "http://[::ffff:127.0.0.1]/"}},
            "config.url: ::ffff:127.0.0.1 is a private",
        ),
        (
            {"name": "n", "type": "WEBHOOK", "config": {"url": "https://u:p@example.com/"}},
            "config.url: must not contain a user name",
        ),
        (
            {"name": "n", "type": "WEBHOOK", "config": {"url": "https://example.com/", "secret": "s3cret"}},
            "config.secret: must be a Standard Webhooks secret",
        ),
        (
            {
                "name": "n",
                "type": "WEBHOOK",
                "config": {"url": "https://example.com/", "secret": "whsec_!!!"},
            },
            "config.secret: what follows whsec_ must be base64",
        ),
        (
            {
                "name": "n",
                "type": "WEBHOOK",
                "config": {
                    "url": "https://example.com/",
                    "secret": "whsec_" + base64.b64encode(b"k" * 16).decode(),
                },
            },
            "config.secret: the key must be 24-64 bytes",
        ),
        (
            {"name": "n", "type": "PAGERDUTY", "config": {"routingKey": "short"}},
            "config.routingKey: must be 32",
        ),
        (
            {"name": "n", "type": "PAGERDUTY", "config": {"routingKey": "-" * 32}},
            "config.routingKey: must be 32",
        ),
        ({"name": "n", "type": "APPRISE", "config": {"urls": []}}, "config.urls: must be a list of 1-20"),
        (
            {"name": "n", "type": "APPRISE", "config": {"urls": ["ntfy://ntfy.sh/t"] * 21}},
            "config.urls: must be a list of 1-20",
        ),
        (
            {"name": "n", "type": "APPRISE", "config": {"urls": ["ntfy://ntfy.sh/t", "bogus://x"]}},
            "config.urls[1]: not a URL Apprise supports",
        ),
        (
            {"name": "n", "type": "APPRISE", "config": {"urls": ["json://127.0.0.1:8080/hook"]}},
            "config.urls[0]: 127.0.0.1 is a private",
        ),
        (
            {"name": "n", "type": "APPRISE", "config": {"urls": ["gotify://localhost/tokentoken"]}},
            "config.urls[0]: localhost resolves to",
        ),
        (
            {"name": "n", "type": "APPRISE", "config": {"urls": [3]}},
            "config.urls[0]: must be a non-empty string",
        ),
    ],
)
async def test_create_refuses_bad_input_naming_the_field(api, world, body, error):
    response = await api.post("/api/alert-channels", json=body, headers=world.alice.headers)
    assert response.status_code == 400, response.text
    assert response.json()["error"].startswith(error), response.json()
    assert (await api.get("/api/alert-channels", headers=world.alice.headers)).json() == {"data": []}


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"config": {"url": "http://127.0.0.1/"}}, "config.url: 127.0.0.1 is a private"),
        ({"config": {"url": "https://example.com/", "nope": True}}, "config.nope: unknown"),
        ({"config": []}, "config"),
        ({"config": None}, "config: must not be null"),
        ({"name": None}, "name: must not be null"),
        ({"name": "x" * 101}, "name"),
        ({"type": "SLACK"}, "type"),
        ({"isActive": "no"}, "isActive"),
    ],
)
async def test_patch_refuses_bad_input_naming_the_field(api, world, database, body, error):
    channel = await create_channel(api, world.alice.headers, "WEBHOOK")
    response = await api.patch(f"/api/alert-channels/{channel['id']}", json=body, headers=world.alice.headers)
    assert response.status_code == 400, response.text
    assert response.json()["error"].startswith(error), response.json()
    assert await stored_config(database, channel["id"]) == CHANNELS["WEBHOOK"]


# --- tenancy and roles --------------------------------------------------------------------------


async def test_another_organizations_channel_is_not_found_on_every_endpoint(api, world):
    channel = await create_channel(api, world.alice.headers)
    path = f"/api/alert-channels/{channel['id']}"
    for method, url, body in (
        ("GET", path, None),
        ("PATCH", path, {"name": "x"}),
        ("DELETE", path, None),
        ("POST", f"{path}/test", None),
        ("GET", f"{path}/deliveries", None),
    ):
        response = await api.request(method, url, json=body, headers=world.bob.headers)
        assert response.status_code == 404, (method, url, response.text)
        assert response.json() == {"error": "Alert channel not found"}
    assert (await api.get("/api/alert-channels", headers=world.bob.headers)).json() == {"data": []}
    assert (await api.get(path, headers=world.alice.headers)).json()["data"]["name"] == channel["name"]


async def test_a_viewer_reads_but_cannot_write(api, world):
    channel = await create_channel(api, world.alice.headers)
    path = f"/api/alert-channels/{channel['id']}"
    for method, url, body in (
        ("POST", "/api/alert-channels", {"name": "n", "type": "SLACK", "config": CHANNELS["SLACK"]}),
        ("PATCH", path, {"name": "x"}),
        ("DELETE", path, None),
        ("POST", f"{path}/test", None),
    ):
        response = await api.request(method, url, json=body, headers=world.vera.headers)
        assert response.status_code == 403, (method, url, response.text)
        assert set(response.json()) == {"error"}
    for url in ("/api/alert-channels", path, f"{path}/deliveries"):
        assert (await api.get(url, headers=world.vera.headers)).status_code == 200
    assert (await api.get(path, headers=world.alice.headers)).json()["data"] == channel


# --- monitors' alertChannelIds -------------------------------------------------------------------


async def test_monitors_choose_channels_and_deleting_one_removes_it(api, world, database):
    slack = await create_channel(api, world.alice.headers)
    pager = await create_channel(api, world.alice.headers, "PAGERDUTY")
    theirs = await create_channel(api, world.bob.headers)

    every = await create_monitor(api, world.alice)
    assert every["alertChannelIds"] is None
    both = await create_monitor(api, world.alice, name="Both", alertChannelIds=[slack["id"], pager["id"]])
    assert both["alertChannelIds"] == [slack["id"], pager["id"]]
    only = await create_monitor(api, world.alice, name="Only Slack", alertChannelIds=[slack["id"]])
    detail = (await api.get(f"/api/monitors/{both['id']}", headers=world.alice.headers)).json()["data"]
    assert detail["alertChannelIds"] == [slack["id"], pager["id"]]

    for ids, error in (
        ([theirs["id"]], f"alertChannelIds: no alert channel {theirs['id']!r} in this organization"),
        (["ac_nope"], "alertChannelIds: no alert channel 'ac_nope' in this organization"),
        ([slack["id"], slack["id"]], "alertChannelIds"),
        ("ac_x", "alertChannelIds"),
    ):
        response = await api.post(
            "/api/monitors",
            json={"name": "X", "type": "HTTP", "url": "https://example.com", "alertChannelIds": ids},
            headers=world.alice.headers,
        )
        assert response.status_code == 400, response.text
        assert response.json()["error"].startswith(error)
        response = await api.put(
            f"/api/monitors/{every['id']}", json={"alertChannelIds": ids}, headers=world.alice.headers
        )
        assert response.status_code == 400 and response.json()["error"].startswith(error)

    updated = await api.put(
        f"/api/monitors/{every['id']}", json={"alertChannelIds": []}, headers=world.alice.headers
    )
    assert updated.status_code == 200 and updated.json()["data"]["alertChannelIds"] == []
    updated = await api.put(
        f"/api/monitors/{every['id']}", json={"alertChannelIds": None}, headers=world.alice.headers
    )
    assert updated.status_code == 200 and updated.json()["data"]["alertChannelIds"] is None

    response = await api.delete(f"/api/alert-channels/{slack['id']}", headers=world.alice.headers)
    assert response.status_code == 200
    async with database.session() as session:
        ids = dict((await session.execute(select(Monitor.id, Monitor.alert_channel_ids))).all())
    assert ids == {every["id"]: None, both["id"]: [pager["id"]], only["id"]: []}
    # Bob's channel is untouched by Alice's deletions.
    assert (
        await api.get(f"/api/alert-channels/{theirs['id']}", headers=world.bob.headers)
    ).status_code == 200


# --- the test notification and the deliveries listing -------------------------------------------


async def test_test_notification_reaches_a_local_webhook_and_is_listed(open_api, api, world, database, clock):
    async with http_recorder() as receiver:
        channel = await create_channel(
            open_api, world.alice.headers, "WEBHOOK", config={"url": f"{receiver.url}/hook", "secret": SECRET}
        )
        path = f"/api/alert-channels/{channel['id']}"
        response = await open_api.post(f"{path}/test", headers=world.adam.headers)
        assert response.status_code == 200, response.text
        result = response.json()["data"]
        assert result | {"latencyMs": None, "attemptedAt": None} == {
            "delivered": True,
            "statusCode": 200,
            "error": None,
            "latencyMs": None,
            "attemptedAt": None,
        }
        assert result["latencyMs"] >= 0
        [request] = receiver.requests
        assert request.path == "/hook" and request.method == "POST"
        payload = Webhook(SECRET).verify(request.body, request.headers)
        assert payload["type"] == "test"

        # A receiver failing: still a 200, saying why.
        receiver.fail_first = 2  # the second request fails
        clock.advance(timedelta(seconds=5))
        failed = (await open_api.post(f"{path}/test", headers=world.alice.headers)).json()["data"]
        assert failed["delivered"] is False and failed["statusCode"] == 500
        assert "receiver is failing on purpose" in failed["error"]

        # A disabled channel can still be tested.
        await open_api.patch(path, json={"isActive": False}, headers=world.alice.headers)
        clock.advance(timedelta(seconds=5))
        third = (await open_api.post(f"{path}/test", headers=world.alice.headers)).json()["data"]
        assert third["delivered"] is True and len(receiver.requests) == 3

    listed = await api.get(f"{path}/deliveries", headers=world.vera.headers)
    assert listed.status_code == 200
    body = listed.json()
    assert body["pagination"] == {"page": 1, "limit": 50, "total": 3, "totalPages": 1}
    attempts = body["data"]
    assert [a["outcome"] for a in attempts] == ["delivered", "failed", "delivered"]  # newest first
    assert attempts[2] | {"id": None, "deliveryId": None} == {
        "id": None,
        "deliveryId": None,
        "event": "test",
        "incidentId": None,
        "attemptedAt": result["attemptedAt"],
        "outcome": "delivered",
        "latencyMs": result["latencyMs"],
        "statusCode": 200,
        "error": None,
    }
    assert attempts[1]["statusCode"] == 500 and attempts[1]["error"] == failed["error"]
    page = (await api.get(f"{path}/deliveries?page=2&limit=2", headers=world.alice.headers)).json()
    assert page["pagination"] == {"page": 2, "limit": 2, "total": 3, "totalPages": 2}
    assert page["data"] == attempts[2:]
    async with database.session() as session:
        deliveries = (await session.scalars(select(AlertDelivery).order_by(AlertDelivery.created_at))).all()
    assert [(d.kind, d.event_id, d.status, d.attempts) for d in deliveries] == [
        ("test", None, "delivered", 1),
        ("test", None, "failed", 1),
        ("test", None, "delivered", 1),
    ]

    # Deleting the channel deletes its deliveries and their attempts.
    await api.delete(path, headers=world.alice.headers)
    async with database.session() as session:
        assert (await session.scalars(select(DeliveryAttempt))).all() == []
        assert (await session.scalars(select(AlertDelivery))).all() == []


async def test_test_notification_refused_by_the_guard_when_private_urls_are_not_allowed(open_api, api, world):
    async with http_recorder() as receiver:
        # Created where loopback is allowed; tested by a server where it is not.
        channel = await create_channel(
            open_api, world.alice.headers, "WEBHOOK", config={"url": f"{receiver.url}/hook"}
        )
        response = await api.post(f"/api/alert-channels/{channel['id']}/test", headers=world.alice.headers)
        assert response.status_code == 200, response.text
        result = response.json()["data"]
        assert result["delivered"] is False and result["statusCode"] is None
        assert "127.0.0.1" in result["error"] and "refused" in result["error"]
        assert receiver.requests == []
    attempts = (
        await api.get(f"/api/alert-channels/{channel['id']}/deliveries", headers=world.alice.headers)
    ).json()
    assert [(a["outcome"], a["error"]) for a in attempts["data"]] == [("failed", result["error"])]


async def test_deliveries_query_is_validated(api, world):
    channel = await create_channel(api, world.alice.headers)
    for query in ("page=0", "limit=0", "limit=101", "page=x"):
        response = await api.get(
            f"/api/alert-channels/{channel['id']}/deliveries?{query}", headers=world.alice.headers
        )
        assert response.status_code == 400, query
        assert set(response.json()) == {"error"}

"""The subscribers' worker against a real aiosmtpd server on 127.0.0.1: an automatic incident of a
page's component mails its confirmed subscribers once (a second round mails nothing), its people's
updates and its recovery too, with the page's public words only; components chosen; nothing for an
incident in maintenance or suppressed by a dependency; declared incidents and their updates;
maintenance scheduled within a week and starting; a failed send retried the next round; the job in
the workers' runner."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from control_plane.core.ids import new_id
from control_plane.models import IncidentEvent, MaintenanceWindow
from control_plane.status_pages.notify import NotifyRound, notify_subscribers
from control_plane.workers.jobs import build_runner
from tests.factories import insert_monitor
from tests.incident_factories import insert_incident
from tests.incidents.support import feed, http_monitor, results_for
from tests.processes import free_port
from tests.status_pages.mailing import (
    body_of,
    mail_settings,
    mails_to,
    subscribe,
    unsubscribe_token,
)
from tests.status_pages.support import create_page
from tests.waiting import eventually

MINUTE = timedelta(minutes=1)


def subjects(smtp, address: str) -> list[str]:
    return [str(mail["Subject"]) for mail in mails_to(smtp, address)[1:]]  # after the confirmation


async def page_of(api, world, database, *names: str):
    monitors = [await http_monitor(database, world.org_a, name=name) for name in names]
    page = await create_page(api, world.alice, monitors=[monitor.id for monitor in monitors])
    return page, monitors


async def test_an_incident_mails_each_confirmed_subscriber_once(
    api, world, database, visitor, smtp, mailing, clock
):
    _page, [monitor] = await page_of(api, world, database, "API")
    await subscribe(visitor, smtp, "jane@example.com")
    assert (
        await visitor.post("/status/acme-status/subscribe", json={"email": "pending@example.com"})
    ).status_code == 202
    now = clock()
    await feed(
        database, results_for(monitor.id, "DD", start=now + MINUTE, error="connect to 10.0.0.5:443 refused")
    )
    at = now + 5 * MINUTE
    assert await notify_subscribers(database, mailing, at) == NotifyRound(sent=1, failed=0)
    assert await notify_subscribers(database, mailing, at + MINUTE) == NotifyRound(0, 0)
    [down] = mails_to(smtp, "jane@example.com")[1:]
    assert down["Subject"] == "[Acme Status] Investigating: API is down"
    assert down["To"] == "jane@example.com"
    assert down["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    token = unsubscribe_token(down)
    assert token == unsubscribe_token(mails_to(smtp, "jane@example.com")[0])
    text = body_of(down)
    assert "API is not responding" in text
    assert "https://status.traxo.example.com/status/acme-status" in text
    assert (
        f"Unsubscribe: https://status.traxo.example.com/status/acme-status/unsubscribe?token={token}" in text
    )
    assert "10.0.0.5" not in text and "refused" not in text  # the engine's words stay private
    assert len(mails_to(smtp, "pending@example.com")) == 1  # its confirmation only

    await feed(database, results_for(monitor.id, "UU", start=now + 6 * MINUTE))
    assert await notify_subscribers(database, mailing, now + 10 * MINUTE) == NotifyRound(sent=1, failed=0)
    assert await notify_subscribers(database, mailing, now + 11 * MINUTE) == NotifyRound(0, 0)
    assert subjects(smtp, "jane@example.com") == [
        "[Acme Status] Investigating: API is down",
        "[Acme Status] Resolved: API is down",
    ]
    assert "API is operational again" in body_of(mails_to(smtp, "jane@example.com")[-1])


async def test_peoples_updates_are_mailed_in_their_words(api, world, database, visitor, smtp, mailing, clock):
    _page, [monitor] = await page_of(api, world, database, "API")
    await subscribe(visitor, smtp, "jane@example.com")
    now = clock()
    await feed(database, results_for(monitor.id, "DD", start=now + MINUTE))
    [incident] = (await api.get("/api/incidents", headers=world.alice.headers)).json()["data"]
    clock.advance(3 * MINUTE)
    for status, message in (("identified", "The database is overloaded"), ("resolved", "Fixed for good")):
        response = await api.post(
            f"/api/incidents/{incident['id']}/updates",
            json={"status": status, "message": message},
            headers=world.alice.headers,
        )
        assert response.status_code == 201, response.text
    assert await notify_subscribers(database, mailing, clock() + MINUTE) == NotifyRound(sent=3, failed=0)
    assert sorted(subjects(smtp, "jane@example.com")) == [
        "[Acme Status] Identified: API is down",
        "[Acme Status] Investigating: API is down",
        "[Acme Status] Resolved: API is down",  # the person's update, not a second recovery mail
    ]
    said = {str(mail["Subject"]): body_of(mail) for mail in mails_to(smtp, "jane@example.com")}
    assert "The database is overloaded" in said["[Acme Status] Identified: API is down"]
    assert "Fixed for good" in said["[Acme Status] Resolved: API is down"]


async def test_subscribers_of_chosen_components_hear_only_of_those(
    api, world, database, visitor, smtp, mailing, clock
):
    page, [api_monitor, _web_monitor] = await page_of(api, world, database, "API", "Web")
    api_component, web_component = (component["id"] for component in page["components"])
    await subscribe(visitor, smtp, "web@example.com", components=[web_component])
    await subscribe(visitor, smtp, "both@example.com", components=[web_component, api_component])
    await subscribe(visitor, smtp, "page@example.com")
    now = clock()
    await feed(database, results_for(api_monitor.id, "DD", start=now + MINUTE))
    assert await notify_subscribers(database, mailing, now + 5 * MINUTE) == NotifyRound(sent=2, failed=0)
    assert subjects(smtp, "web@example.com") == []
    assert (
        subjects(smtp, "both@example.com")
        == subjects(smtp, "page@example.com")
        == ["[Acme Status] Investigating: API is down"]
    )


async def test_nothing_is_mailed_for_incidents_in_maintenance_or_suppressed_or_before_confirming(
    api, world, database, visitor, smtp, mailing, clock
):
    _page, [api_monitor, web_monitor] = await page_of(api, world, database, "API", "Web")
    now = clock()
    earlier = await insert_incident(database, world.org_a, web_monitor.id, now - MINUTE)
    await subscribe(visitor, smtp, "jane@example.com")
    quiet = await insert_incident(database, world.org_a, api_monitor.id, now + MINUTE)
    async with database.session() as session:
        for incident, at, fields in (
            (earlier, now - MINUTE, {}),  # before the subscription was confirmed
            (quiet, now + MINUTE, {"in_maintenance": True}),
            (quiet, now + 2 * MINUTE, {"suppressed_by": new_id("mon")}),
        ):
            session.add(
                IncidentEvent(
                    id=new_id("iev"),
                    org_id=world.org_a,
                    monitor_id=incident.monitor_id,
                    incident_id=incident.id,
                    type="incident.opened",
                    occurred_at=at,
                    payload={},
                    **fields,
                )
            )
        await session.commit()
    assert await notify_subscribers(database, mailing, now + 5 * MINUTE) == NotifyRound(0, 0)
    assert subjects(smtp, "jane@example.com") == []


async def test_declared_incidents_and_their_updates_are_mailed(
    api, world, database, visitor, smtp, mailing, clock
):
    page, [_api_monitor, _web_monitor] = await page_of(api, world, database, "API", "Web")
    api_component, web_component = (component["id"] for component in page["components"])
    await subscribe(visitor, smtp, "web@example.com", components=[web_component])
    await subscribe(visitor, smtp, "api@example.com", components=[api_component])
    clock.advance(MINUTE)
    incidents = "/api/status-pages/acme-status/incidents"
    body = {
        "title": "Slow logins",
        "impact": "minor",
        "message": "Looking into it",
        "componentIds": [web_component],
    }
    declared = await api.post(incidents, json=body, headers=world.alice.headers)
    assert declared.status_code == 201, declared.text
    clock.advance(MINUTE)
    update = await api.post(
        f"{incidents}/{declared.json()['data']['id']}/updates",
        json={"status": "monitoring", "message": "A fix is out"},
        headers=world.alice.headers,
    )
    assert update.status_code == 201, update.text
    everyone = {"title": "Billing delayed", "impact": "none", "message": "Invoices run late"}
    assert (await api.post(incidents, json=everyone, headers=world.alice.headers)).status_code == 201
    assert await notify_subscribers(database, mailing, clock() + MINUTE) == NotifyRound(sent=4, failed=0)
    assert await notify_subscribers(database, mailing, clock() + 2 * MINUTE) == NotifyRound(0, 0)
    assert subjects(smtp, "web@example.com") == [
        "[Acme Status] Investigating: Slow logins",
        "[Acme Status] Monitoring: Slow logins",
        "[Acme Status] Investigating: Billing delayed",
    ]
    assert subjects(smtp, "api@example.com") == ["[Acme Status] Investigating: Billing delayed"]
    assert "A fix is out" in body_of(mails_to(smtp, "web@example.com")[2])


async def test_maintenance_is_mailed_when_scheduled_within_a_week_and_when_it_starts(
    api, world, database, visitor, smtp, mailing, clock
):
    _page, [api_monitor] = await page_of(api, world, database, "API")
    other = await insert_monitor(database, world.org_a, name="Elsewhere")
    await subscribe(visitor, smtp, "jane@example.com")
    now = clock() + MINUTE
    windows = {
        "Database upgrade": (api_monitor.id, now + timedelta(days=2)),
        "Far ahead": (api_monitor.id, now + timedelta(days=8)),
        "Not on the page": (other.id, now + timedelta(days=2)),
        "Network work": (None, now + timedelta(days=3)),  # the whole organization
    }
    async with database.session() as session:
        for title, (monitor_id, starts) in windows.items():
            session.add(
                MaintenanceWindow(
                    id=new_id("mw"),
                    org_id=world.org_a,
                    monitor_id=monitor_id,
                    title=title,
                    starts_at=starts,
                    ends_at=starts + timedelta(hours=2),
                    created_at=now,
                    updated_at=now,
                )
            )
        await session.commit()
    assert await notify_subscribers(database, mailing, now + MINUTE) == NotifyRound(sent=2, failed=0)
    assert await notify_subscribers(database, mailing, now + 2 * MINUTE) == NotifyRound(0, 0)
    assert sorted(subjects(smtp, "jane@example.com")) == [
        "[Acme Status] Scheduled maintenance: Database upgrade",
        "[Acme Status] Scheduled maintenance: Network work",
    ]
    started = now + timedelta(days=2, minutes=5)
    assert await notify_subscribers(database, mailing, started) == NotifyRound(sent=1, failed=0)
    assert await notify_subscribers(database, mailing, started + MINUTE) == NotifyRound(0, 0)
    assert subjects(smtp, "jane@example.com")[-1] == "[Acme Status] Maintenance in progress: Database upgrade"


async def test_after_unsubscribing_nothing_more_is_mailed(
    api, world, database, visitor, smtp, mailing, clock
):
    _page, [monitor] = await page_of(api, world, database, "API")
    await subscribe(visitor, smtp, "jane@example.com")
    token = unsubscribe_token(mails_to(smtp, "jane@example.com")[0])
    assert (await visitor.post("/status/acme-status/unsubscribe", params={"token": token})).status_code == 200
    now = clock()
    await feed(database, results_for(monitor.id, "DD", start=now + MINUTE))
    assert await notify_subscribers(database, mailing, now + 5 * MINUTE) == NotifyRound(0, 0)


async def test_a_failed_send_is_retried_the_next_round(
    api, world, database, visitor, smtp, mailing, settings, clock
):
    _page, [monitor] = await page_of(api, world, database, "API")
    await subscribe(visitor, smtp, "jane@example.com")
    now = clock()
    await feed(database, results_for(monitor.id, "DD", start=now + MINUTE))
    down = mail_settings(settings.database_url, free_port())  # nothing listens there
    assert await notify_subscribers(database, down, now + 5 * MINUTE) == NotifyRound(sent=0, failed=1)
    assert await notify_subscribers(database, down, now + 6 * MINUTE) == NotifyRound(sent=0, failed=1)
    assert subjects(smtp, "jane@example.com") == []
    assert await notify_subscribers(database, mailing, now + 7 * MINUTE) == NotifyRound(sent=1, failed=0)
    assert await notify_subscribers(database, mailing, now + 8 * MINUTE) == NotifyRound(0, 0)
    assert subjects(smtp, "jane@example.com") == ["[Acme Status] Investigating: API is down"]


async def test_without_an_smtp_server_nothing_is_claimed(
    api, world, database, visitor, smtp, mailing, settings, clock
):
    _page, [monitor] = await page_of(api, world, database, "API")
    await subscribe(visitor, smtp, "jane@example.com")
    now = clock()
    await feed(database, results_for(monitor.id, "DD", start=now + MINUTE))
    assert await notify_subscribers(database, settings, now + 5 * MINUTE) == NotifyRound(0, 0)
    assert await notify_subscribers(database, mailing, now + 6 * MINUTE) == NotifyRound(sent=1, failed=0)


async def test_the_job_runs_in_the_workers_runner(api, world, database, visitor, smtp, mailing, clock):
    _page, [monitor] = await page_of(api, world, database, "API")
    await subscribe(visitor, smtp, "jane@example.com")
    await feed(database, results_for(monitor.id, "DD", start=clock() + MINUTE))
    clock.advance(5 * MINUTE)
    runner = build_runner(database, mailing.model_copy(update={"status_page_notify_seconds": 0.05}), clock)
    await runner.start()
    try:
        await eventually(lambda: len(mails_to(smtp, "jane@example.com")) == 2, what="the incident mail")
    finally:
        await runner.stop()
    assert subjects(smtp, "jane@example.com") == ["[Acme Status] Investigating: API is down"]


async def test_two_workers_at_once_mail_once(api, world, database, visitor, smtp, mailing, clock):
    _page, [monitor] = await page_of(api, world, database, "API")
    await subscribe(visitor, smtp, "jane@example.com")
    await subscribe(visitor, smtp, "joe@example.com")
    now = clock()
    await feed(database, results_for(monitor.id, "DD", start=now + MINUTE))
    rounds = await asyncio.gather(
        *(notify_subscribers(database, mailing, now + 5 * MINUTE) for _ in range(3))
    )
    assert sum(r.sent for r in rounds) == 2 and sum(r.failed for r in rounds) == 0
    assert (
        subjects(smtp, "jane@example.com")
        == subjects(smtp, "joe@example.com")
        == ["[Acme Status] Investigating: API is down"]
    )

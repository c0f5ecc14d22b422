"""The rules beyond consecutive failures: failure rate, flapping, dependencies, maintenance, and
incidents of their own kind for certificates and DNS answers."""

from __future__ import annotations

from datetime import timedelta

from control_plane.core.ids import new_id
from control_plane.models import MaintenanceWindow
from tests.incidents.support import T0, events_of, feed, http_monitor, incidents_of, results_for, timeline_of


async def test_a_failure_rate_catches_a_service_failing_every_other_check(database, world):
    monitor = await http_monitor(
        database, world.org_a, config={"failureRate": {"percent": 50, "windowMinutes": 10}}
    )
    await feed(database, results_for(monitor.id, "UDUDUD"))
    [incident] = await incidents_of(database, monitor.id)  # one: hovering at 50% does not flap
    assert incident.cause == "50% of checks failed in the last 10 minutes (2 of 4; threshold 50%)"
    assert incident.resolved_at is None
    # It recovers once failures fall under half the threshold (25%) within the 10-minute window.
    await feed(database, results_for(monitor.id, "UUUU", start=T0 + timedelta(minutes=6)))
    assert (await incidents_of(database, monitor.id))[0].resolved_at is None  # 3 of 10: 30%
    await feed(database, results_for(monitor.id, "U", start=T0 + timedelta(minutes=10)))
    assert (await incidents_of(database, monitor.id))[0].resolved_at is None  # still 3 of 10
    await feed(database, results_for(monitor.id, "U", start=T0 + timedelta(minutes=11)))
    [incident] = await incidents_of(database, monitor.id)
    assert incident.resolved_at == T0 + timedelta(minutes=11)  # 2 of 10: the first D left the window
    plain = await http_monitor(database, world.org_a)  # without the rule: never two in a row
    await feed(database, results_for(plain.id, "UDUDUD"))
    assert await incidents_of(database, plain.id) == []


async def test_a_flapping_monitor_keeps_one_incident_open_instead_of_a_storm(database, world):
    monitor = await http_monitor(database, world.org_a, config={"confirmations": 1, "flapThreshold": 2})
    await feed(database, results_for(monitor.id, "DUDUDUDU"))  # down four times in eight minutes
    incidents = await incidents_of(database, monitor.id)
    # Downs 1 and 2 are ordinary incidents; the third makes it flapping and keeps that one open.
    assert [i.resolved_at is None for i in incidents] == [False, False, True]
    assert incidents[-1].flapping is True
    types = [e.type for e in await events_of(database, monitor.id)]
    assert types.count("incident.opened") == 3
    assert types.count("incident.flapping") == 1
    timeline = [t.message for t in await timeline_of(database, incidents[-1].id)]
    assert any(m.startswith("Flapping: 3 changes") for m in timeline)
    assert "Down again: Expected status 200, got 503" in timeline


async def test_a_dependency_down_suppresses_the_dependents_alerts_but_keeps_the_record(database, world):
    router = await http_monitor(database, world.org_a, name="router")
    app = await http_monitor(database, world.org_a, name="app", config={"dependsOn": [router.id]})
    await feed(database, results_for(router.id, "DD"))
    await feed(database, results_for(app.id, "DD"))
    [incident] = await incidents_of(database, app.id)
    assert incident.suppressed_by == router.id
    [opened] = await events_of(database, app.id)
    assert opened.suppressed_by == router.id
    [router_incident] = await incidents_of(database, router.id)
    assert router_incident.suppressed_by is None


async def test_a_dependency_of_another_organization_suppresses_nothing(database, world):
    theirs = await http_monitor(database, world.org_b)
    mine = await http_monitor(database, world.org_a, config={"dependsOn": [theirs.id]})
    await feed(database, results_for(theirs.id, "DD"))
    await feed(database, results_for(mine.id, "DD"))
    [incident] = await incidents_of(database, mine.id)
    assert incident.suppressed_by is None


async def test_an_incident_in_a_maintenance_window_is_recorded_as_such(database, world):
    monitor = await http_monitor(database, world.org_a)
    async with database.session() as session:
        session.add(
            MaintenanceWindow(
                id=new_id("mw"),
                org_id=world.org_a,
                monitor_id=monitor.id,
                title="Database upgrade",
                starts_at=T0,
                ends_at=T0 + timedelta(minutes=30),
                is_active=True,
            )
        )
        await session.commit()
    await feed(database, results_for(monitor.id, "DD"))
    [incident] = await incidents_of(database, monitor.id)
    assert incident.in_maintenance is True
    assert (await events_of(database, monitor.id))[0].in_maintenance is True
    # Recovering after the window: that event is not in maintenance.
    await feed(database, results_for(monitor.id, "U", start=T0 + timedelta(hours=1)))
    resolved = [e for e in await events_of(database, monitor.id) if e.type == "incident.resolved"]
    assert [e.in_maintenance for e in resolved] == [False]


def _ssl_details(days: int, not_after: str) -> dict:
    return {"days_until_expiry": days, "not_after": not_after, "subject": "CN=example.test"}


async def test_a_certificate_inside_its_threshold_raises_one_incident_until_renewed(database, world):
    monitor = await http_monitor(database, world.org_a, type="SSL", url="example.test:443")
    warning = "certificate for example.test expires in 5 days, on 2026-12-05 12:00 UTC (threshold: 14 days)"
    expiring = [r for r in results_for(monitor.id, "UUUU")]
    expiring = [
        r.__class__(
            **{
                **{f: getattr(r, f) for f in r.__dataclass_fields__},
                "error_kind": "cert_expiring",
                "error_message": warning,
                "details": _ssl_details(5, "2026-12-05T12:00:00+00:00"),
            }
        )
        for r in expiring
    ]
    await feed(database, expiring)
    [incident] = await incidents_of(database, monitor.id)
    assert incident.kind == "SSL_EXPIRY"
    assert incident.cause == "C" + warning[1:]
    assert len(await events_of(database, monitor.id)) == 1  # once, not on every check
    renewed = [
        r.__class__(
            **{
                **{f: getattr(r, f) for f in r.__dataclass_fields__},
                "details": _ssl_details(89, "2027-03-01T12:00:00+00:00"),
            }
        )
        for r in results_for(monitor.id, "U", start=T0 + timedelta(minutes=10))
    ]
    await feed(database, renewed)
    [incident] = await incidents_of(database, monitor.id)
    assert incident.resolved_at == T0 + timedelta(minutes=10)
    # The same certificate again (e.g. a rollback) does not raise a second incident for it.
    await feed(
        database,
        [
            r.__class__(
                **{
                    **{f: getattr(r, f) for f in r.__dataclass_fields__},
                    "error_kind": "cert_expiring",
                    "error_message": warning,
                    "details": _ssl_details(5, "2026-12-05T12:00:00+00:00"),
                }
            )
            for r in results_for(monitor.id, "U", start=T0 + timedelta(minutes=11))
        ],
    )
    assert len(await incidents_of(database, monitor.id)) == 1


async def test_dns_answers_that_change_raise_one_incident_per_change(database, world):
    monitor = await http_monitor(database, world.org_a, type="DNS", url="example.test")

    def answers(start, *values):
        [r] = results_for(monitor.id, "U", start=start)
        return r.__class__(
            **{**{f: getattr(r, f) for f in r.__dataclass_fields__}, "details": {"answers": list(values)}}
        )

    await feed(database, [answers(T0 + timedelta(minutes=i), "192.0.2.10") for i in range(3)])
    assert await incidents_of(database, monitor.id) == []
    await feed(database, [answers(T0 + timedelta(minutes=3 + i), "192.0.2.99") for i in range(3)])
    [incident] = await incidents_of(database, monitor.id)
    assert incident.kind == "DNS_CHANGE"
    assert incident.cause == "DNS answers for example.test changed: 192.0.2.10 → 192.0.2.99"
    assert incident.resolved_at == incident.started_at  # a point event: recorded, alerted once
    assert [e.type for e in await events_of(database, monitor.id)] == ["incident.opened"]

"""Plan changes (services/plans.py): downgrade rules, the audit event, change notifications, defaults."""

from __future__ import annotations

import dataclasses

from sqlalchemy import select

from control_plane.core.timefmt import utcnow
from control_plane.models import AuditEvent, Monitor, Organization
from control_plane.services import plans
from control_plane.settings import Plan
from tests.billing_support import MonitorSpec, add_monitors, api_client


async def set_plan(database, org_id: str, plan: Plan, actor: str = "operator") -> plans.PlanChange:
    async with database.session() as session:
        return await plans.set_plan(session, org_id, plan, actor=actor, now=utcnow())


async def monitors_of(database, org_id: str) -> dict[str, Monitor]:
    async with database.session() as session:
        rows = await session.scalars(select(Monitor).where(Monitor.org_id == org_id))
        return {monitor.id: monitor for monitor in rows}


async def audits(database, org_id: str) -> list[AuditEvent]:
    async with database.session() as session:
        return list(await session.scalars(select(AuditEvent).where(AuditEvent.org_id == org_id)))


def listen(database, topic: str) -> list[str]:
    heard: list[str] = []
    database.changes.subscribe(topic, heard.append)
    return heard


async def test_a_downgrade_pauses_newest_first_and_browser_and_raises_intervals(world, database):
    await set_plan(database, world.org_a, Plan.BUSINESS)
    ids = await add_monitors(
        database,
        world.org_a,
        MonitorSpec(interval=60),  # 0: kept, interval raised
        MonitorSpec(interval=30),  # 1: kept, interval raised
        MonitorSpec(type="BROWSER", interval=600),  # 2: paused, FREE has no BROWSER
        MonitorSpec(interval=300),  # 3: kept
        MonitorSpec(interval=900, active=False),  # 4: already paused, untouched
        MonitorSpec(interval=60, active=False),  # 5: already paused, interval raised
        MonitorSpec(interval=300),  # 6: kept (the 5th active one)
        MonitorSpec(interval=3600),  # 7: kept
        MonitorSpec(interval=300),  # 8: over the limit
        MonitorSpec(interval=45),  # 9: over the limit (newest), interval raised
    )
    other = await add_monitors(database, world.org_b, MonitorSpec(interval=30), MonitorSpec(type="BROWSER"))
    monitor_changes, auth_changes = listen(database, "monitors"), listen(database, "auth")

    change = await set_plan(database, world.org_a, Plan.FREE, actor="usr_operator")

    assert (change.old_plan, change.new_plan) == ("BUSINESS", "FREE")
    assert change.paused_browser == [ids[2]]
    assert change.paused_over_limit == [ids[9], ids[8]]
    assert [(r.monitor_id, r.old_interval, r.new_interval) for r in change.raised_intervals] == [
        (ids[0], 60, 300),
        (ids[1], 30, 300),
        (ids[5], 60, 300),
        (ids[9], 45, 300),
    ]
    monitors = await monitors_of(database, world.org_a)
    assert sorted(m for m in ids if monitors[m].is_active) == sorted([ids[0], ids[1], ids[3], ids[6], ids[7]])
    assert [monitors[m].interval for m in ids] == [300, 300, 600, 300, 900, 300, 300, 3600, 300, 300]
    assert len(monitors) == 10  # kept, not deleted

    untouched = await monitors_of(database, world.org_b)
    assert [(untouched[m].is_active, untouched[m].interval) for m in other] == [(True, 30), (True, 300)]

    [audit] = [a for a in await audits(database, world.org_a) if a.details["toPlan"] == "FREE"]
    assert (audit.action, audit.actor) == ("plan.changed", "usr_operator")
    assert audit.message == change.describe()
    for text in (
        "from BUSINESS to FREE",
        f"Paused 1 BROWSER monitor ({ids[2]})",
        f"Paused 2 monitors over the FREE limit of 5 active monitors, newest first ({ids[9]}, {ids[8]})",
        f"Raised the interval of 4 monitors to the FREE minimum of 300 s ({ids[0]} 60 s -> 300 s",
    ):
        assert text in audit.message, audit.message
    assert audit.details["pausedMonitorIds"] == [ids[2], ids[9], ids[8]]
    assert audit.details["raisedIntervals"][0] == {"monitorId": ids[0], "from": 60, "to": 300}
    assert await audits(database, world.org_b) == []

    assert set(monitor_changes) == {ids[0], ids[1], ids[2], ids[5], ids[8], ids[9]}
    assert auth_changes


async def test_pro_pauses_browser_monitors_within_the_count(world, database):
    await set_plan(database, world.org_a, Plan.ENTERPRISE)
    ids = await add_monitors(database, world.org_a, MonitorSpec(type="BROWSER", interval=15), MonitorSpec())
    change = await set_plan(database, world.org_a, Plan.PRO)
    assert change.paused_browser == [ids[0]] and change.paused_over_limit == []
    monitors = await monitors_of(database, world.org_a)
    assert (monitors[ids[0]].is_active, monitors[ids[0]].interval) == (False, 60)
    assert monitors[ids[1]].is_active


async def test_an_upgrade_touches_no_monitor(world, database):
    ids = await add_monitors(database, world.org_a, *[MonitorSpec(interval=300)] * 5)
    change = await set_plan(database, world.org_a, Plan.ENTERPRISE)
    assert change.changed_monitor_ids == []
    assert "No monitor needed a change" in change.describe()
    monitors = await monitors_of(database, world.org_a)
    assert all(monitors[m].is_active and monitors[m].interval == 300 for m in ids)
    [audit] = await audits(database, world.org_a)
    assert audit.details["pausedMonitorIds"] == [] and audit.details["toPlan"] == "ENTERPRISE"


async def test_the_same_plan_changes_nothing_and_writes_no_audit(world, database):
    await add_monitors(database, world.org_a, MonitorSpec(interval=15))
    change = await set_plan(database, world.org_a, Plan.FREE)
    assert not change.plan_changed and change.changed_monitor_ids == []
    assert "already on plan FREE" in change.describe()
    assert await audits(database, world.org_a) == []


async def test_an_unlimited_plan_keeps_every_monitor_active(world, database):
    await add_monitors(database, world.org_a, *[MonitorSpec(interval=15)] * 6)
    await set_plan(database, world.org_a, Plan.BUSINESS)
    change = await set_plan(database, world.org_a, Plan.ENTERPRISE)
    assert change.paused_over_limit == [] and change.raised_intervals == []


async def test_cached_principals_see_the_new_plan_at_once(api, world, database):
    before = await api.get("/api/organization", headers=world.alice.headers)
    assert before.json()["data"]["plan"] == "FREE"
    await set_plan(database, "org-a", Plan.PRO)  # by slug, as operators type it
    after = await api.get("/api/organization", headers=world.alice.headers)
    assert after.json()["data"]["plan"] == "PRO"


async def test_usage_lists_every_organization_with_its_monitor_count(world, database):
    await add_monitors(database, world.org_a, MonitorSpec(), MonitorSpec(active=False))
    async with database.session() as session:
        usage = await plans.list_usage(session)
    assert [(u.org_id, u.slug, u.plan, u.monitor_count) for u in usage] == [
        (world.org_a, "org-a", "FREE", 2),
        (world.org_b, "org-b", "FREE", 0),
    ]


async def test_new_organizations_get_the_default_plan(runtime, world, database):
    custom = dataclasses.replace(
        runtime, settings=runtime.settings.model_copy(update={"default_plan": Plan.BUSINESS})
    )
    async with api_client(custom) as client:
        created = await client.post(
            "/api/organization", json={"name": "Nora Inc", "slug": "nora-inc"}, headers=world.nora.headers
        )
        assert created.status_code == 201
        org = (await client.get("/api/organization", headers=world.nora.headers)).json()["data"]
    assert org["plan"] == "BUSINESS"
    async with database.session() as session:
        stored = await session.scalar(select(Organization.plan).where(Organization.slug == "nora-inc"))
    assert stored == "BUSINESS"


async def test_the_default_plan_is_free(api, world, settings):
    assert settings.default_plan == Plan.FREE
    response = await api.post(
        "/api/organization", json={"name": "Nora Inc", "slug": "nora-inc"}, headers=world.nora.headers
    )
    assert response.status_code == 201
    org = (await api.get("/api/organization", headers=world.nora.headers)).json()["data"]
    assert org["plan"] == "FREE"

"""The engine's periodic pass (a leased job, once at a time across replicas): results left queued
by a process that died or failed to evaluate them; regions whose checks stopped arriving; flapping
incidents whose monitor has been stable long enough to close."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, func, literal, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.core.id_sets import among
from control_plane.db import UTCDateTime
from control_plane.domain.incident_rules import FLAP_STABLE_MINUTES, NO_DATA_INTERVALS
from control_plane.domain.monitor_targets import PASSIVE_TYPES
from control_plane.incidents import changes
from control_plane.incidents.engine import IncidentEngine, monitor_row
from control_plane.incidents.fold import Region, humanize_seconds
from control_plane.incidents.judge import MonitorRow, open_incidents
from control_plane.incidents.states import lock_monitor_states, read_region_states, write_region_states
from control_plane.maintenance import monitors_in_maintenance
from control_plane.models import Agent, Incident, Monitor, MonitorState, RegionState
from control_plane.models.incidents import KIND_DOWN, KIND_NO_DATA

# Queued results younger than this are their writer's to evaluate (it does so right after commit).
LEFTOVER_AGE = timedelta(seconds=10)
LEFTOVER_CHUNK = 2000


@dataclass(slots=True)
class Swept:
    leftovers: int = 0
    no_data_opened: int = 0
    flapping_closed: int = 0


async def sweep(session: AsyncSession, engine: IncidentEngine, *, now: datetime) -> Swept:
    swept = Swept()
    while True:
        evaluated = await engine.evaluate_queued(
            session, limit=LEFTOVER_CHUNK, queued_before=now - LEFTOVER_AGE
        )
        swept.leftovers += evaluated.results
        if evaluated.results < LEFTOVER_CHUNK:
            break
    swept.no_data_opened = await open_no_data(session, now=now)
    swept.flapping_closed = await close_stable_flapping(session, now=now)
    return swept


def _silent_before(now: datetime, intervals: list[int]) -> Any:
    """A monitor's cutoff as SQL: `now` less NO_DATA_INTERVALS of its interval, as one bound value
    per distinct interval (a CASE), so the same comparison runs on SQLite and PostgreSQL without
    date arithmetic in SQL."""
    return case(
        *(
            (Monitor.interval == i, literal(now - timedelta(seconds=i * NO_DATA_INTERVALS), UTCDateTime()))
            for i in intervals
        ),
        else_=None,
    )


async def silent_regions(session: AsyncSession, *, now: datetime) -> dict[str, list[str]]:
    """Monitor id -> its regions silent for NO_DATA_INTERVALS intervals (its newest result there,
    or its creation or last change if later, older than that) without a NO_DATA incident yet.

    Found in SQL, so a pass reads the few silent regions and not every monitor and region: a sweep
    every five seconds that loaded 100,000 monitors held the event loop for seconds each time."""
    active = (Monitor.is_active.is_(True), Monitor.type.not_in(PASSIVE_TYPES))
    intervals = sorted(set(await session.scalars(select(Monitor.interval).where(*active).distinct())))
    if not intervals:
        return {}
    cutoff = _silent_before(now, intervals)
    quiet_since = (Monitor.created_at < cutoff, Monitor.updated_at < cutoff)
    # Regions with results, none recent (and not already NO_DATA).
    seen = (
        select(RegionState.monitor_id, RegionState.region)
        .join(Monitor, Monitor.id == RegionState.monitor_id)
        .where(
            *active,
            *quiet_since,
            RegionState.no_data.is_(False),
            or_(RegionState.newest_at.is_(None), RegionState.newest_at < cutoff),
        )
    )
    # Regions of a monitor that never had a result there.
    listed = (
        (
            func.json_array_elements_text(Monitor.regions)
            if session.get_bind().dialect.name == "postgresql"
            else func.json_each(Monitor.regions)
        )
        .table_valued("value")
        .alias("listed")
    )
    never = (
        select(Monitor.id, listed.c.value)
        .select_from(Monitor)
        .join(listed, true())
        .outerjoin(
            RegionState, and_(RegionState.monitor_id == Monitor.id, RegionState.region == listed.c.value)
        )
        .where(*active, *quiet_since, RegionState.monitor_id.is_(None))
    )
    silent: dict[str, set[str]] = {}
    for query in (seen, never):
        for monitor_id, region in (await session.execute(query)).all():
            silent.setdefault(monitor_id, set()).add(str(region))
    return {monitor_id: sorted(regions) for monitor_id, regions in silent.items()}


async def open_no_data(session: AsyncSession, *, now: datetime) -> int:
    """A region with no result for NO_DATA_INTERVALS intervals (since the monitor was created or last
    changed, or since its newest result) gets its monitor a NO_DATA incident, once. Committed here."""
    silent = await silent_regions(session, now=now)
    monitors: dict[str, MonitorRow] = {}
    baseline: dict[str, datetime] = {}
    for condition in among(session, Monitor.id, list(silent)):
        query = select(Monitor).where(condition)
        for entity in await session.scalars(query):
            monitors[entity.id] = monitor_row(entity)
            baseline[entity.id] = max(entity.created_at, entity.updated_at)
    # Only the regions it still judges (a state row may be left of a region it no longer has).
    stale = {
        monitor_id: [r for r in regions if r in monitors[monitor_id].judged_regions]
        for monitor_id, regions in silent.items()
        if monitor_id in monitors
    }
    stale = {monitor_id: regions for monitor_id, regions in stale.items() if regions}
    if not stale:
        await session.commit()
        return 0
    served = set(await session.scalars(select(Agent.region).where(Agent.lapsed_at.is_(None)).distinct()))
    opened = 0
    locked = await lock_monitor_states(session, list(stale))
    regions = await read_region_states(session, stale)  # again, under the lock
    open_now = await open_incidents(session, list(stale))
    in_maintenance = await monitors_in_maintenance(session, [(m, monitors[m].org_id) for m in stale], now)
    written: dict[tuple[str, str], Region] = {}
    for monitor_id, region_names in sorted(stale.items()):
        monitor = monitors[monitor_id]
        silence_s = monitor.interval * NO_DATA_INTERVALS
        still = [
            r
            for r in region_names
            if not regions.get((monitor_id, r), Region()).no_data
            and (regions.get((monitor_id, r), Region()).newest_at or baseline[monitor_id])
            < now - timedelta(seconds=silence_s)
        ]
        if not still or monitor_id not in locked:
            continue
        for region in still:
            current = regions.get((monitor_id, region), Region())
            written[(monitor_id, region)] = replace(current, no_data=True)
        incident = open_now.get((monitor_id, KIND_NO_DATA))
        if incident is not None:
            await changes.widen_regions(session, incident, tuple(still))
            continue
        reasons = [
            f"No checks from {region} for {humanize_seconds(silence_s)}: "
            + (
                "its agents have stopped sending results"
                if region in served
                else "no agent is serving the region"
            )
            for region in still
        ]
        await changes.open_incident(
            session,
            monitor.ref,
            kind=KIND_NO_DATA,
            started_at=now,
            cause="; ".join(reasons),
            regions=tuple(still),
            suppressed_by=None,
            in_maintenance=monitor_id in in_maintenance,
            now=now,
        )
        opened += 1
    await write_region_states(session, written)
    await session.commit()
    return opened


async def close_stable_flapping(session: AsyncSession, *, now: datetime) -> int:
    """Resolve flapping incidents whose monitor has been up for FLAP_STABLE_MINUTES. Committed here."""
    stable_since = now - timedelta(minutes=FLAP_STABLE_MINUTES)
    rows = (
        await session.execute(
            select(Incident.monitor_id)
            .join(MonitorState, MonitorState.monitor_id == Incident.monitor_id)
            .where(
                Incident.resolved_at.is_(None),
                Incident.kind == KIND_DOWN,
                Incident.flapping.is_(True),
                MonitorState.down.is_(False),
                MonitorState.changed_at < stable_since,
            )
        )
    ).all()
    if not rows:
        await session.commit()
        return 0
    monitors: dict[str, MonitorRow] = {}
    for entity in await session.scalars(select(Monitor).where(Monitor.id.in_([r.monitor_id for r in rows]))):
        monitors[entity.id] = monitor_row(entity)
    states = await lock_monitor_states(session, list(monitors))
    open_now = await open_incidents(session, list(monitors))
    in_maintenance = await monitors_in_maintenance(session, [(m, r.org_id) for m, r in monitors.items()], now)
    closed = 0
    for monitor_id, monitor in monitors.items():
        state, incident = states.get(monitor_id), open_now.get((monitor_id, KIND_DOWN))
        if state is None or incident is None or state.down or not incident.flapping:
            continue
        if state.changed_at is None or state.changed_at >= stable_since:
            continue
        if await changes.resolve_incident(
            session,
            monitor.ref,
            incident,
            at=state.changed_at,  # up since then: the downtime ended there
            message=f"Stable for {FLAP_STABLE_MINUTES} minutes: no longer flapping",
            in_maintenance=monitor_id in in_maintenance,
            now=now,
        ):
            closed += 1
    await session.commit()
    return closed

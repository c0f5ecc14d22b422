"""Monitors: creation and changes under the plan's rules, pause/resume, deletion, lookups."""

from __future__ import annotations

import copy
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Text, cast, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.ai.ingest.store import delete_ai_events_of
from control_plane.core import changes
from control_plane.core.errors import Forbidden, InvalidInput, NotFound
from control_plane.core.ids import new_id
from control_plane.domain.monitor_config import validate_config
from control_plane.domain.monitor_targets import PASSIVE_TYPES, validate_target
from control_plane.domain.plans import limits_for
from control_plane.models import AlertChannel, Monitor, Organization
from control_plane.results import delete_results_of, exclude_result_writers
from control_plane.services.regions import known_regions
from control_plane.settings import Settings

MONITORS_TOPIC = "monitors"  # payload: the monitor id; agents' assignment streams listen
MAX_INTERVAL = 3600
DEFAULT_INTERVAL = 60
DEFAULT_TIMEOUT = 30


@dataclass(frozen=True, slots=True)
class OrgContext:
    org_id: str
    plan: str


def new_heartbeat_token() -> str:
    return "hb_" + secrets.token_urlsafe(24)


async def get_monitor(session: AsyncSession, org_id: str, monitor_id: str) -> Monitor:
    monitor = await session.scalar(select(Monitor).where(Monitor.id == monitor_id, Monitor.org_id == org_id))
    if monitor is None:
        raise NotFound("Monitor not found")
    return monitor


# What a monitor list shows, newest first. Plain rows, not ORM objects: an organization may have
# thousands of monitors and the list is read often. `regions` comes as its JSON text (the list
# decodes each distinct value once); `config`, the largest column, is not read at all.
_LIST_COLUMNS = (
    Monitor.id,
    Monitor.name,
    Monitor.url,
    Monitor.type,
    Monitor.interval,
    Monitor.is_active,
    Monitor.method,
    Monitor.timeout,
    cast(Monitor.regions, Text).label("regions"),
    Monitor.created_at,
    Monitor.last_check_status,
    Monitor.last_check_response_time,
    Monitor.last_checked_at,
    Monitor.heartbeat_token,
)


async def list_monitors(session: AsyncSession, org_id: str) -> Sequence[Sequence[Any]]:
    """The organization's monitors as rows of `_LIST_COLUMNS`, newest first."""
    connection = await session.connection()  # Core: no ORM row processing for 1,000+ rows
    rows = await connection.execute(
        select(*_LIST_COLUMNS).where(Monitor.org_id == org_id).order_by(Monitor.created_at.desc(), Monitor.id)
    )
    return rows.all()


async def count_monitors(session: AsyncSession, org_id: str, *, active_only: bool = False) -> int:
    query = select(func.count()).select_from(Monitor).where(Monitor.org_id == org_id)
    if active_only:
        query = query.where(Monitor.is_active.is_(True))
    return int(await session.scalar(query) or 0)


async def _lock_org(session: AsyncSession, org: OrgContext) -> OrgContext:
    """Serialize the organization's monitor-count decisions and read its plan as committed.

    A no-op UPDATE rather than SELECT … FOR UPDATE: on SQLite it takes the write lock before the
    count is read, so two concurrent creations cannot both see room for one more monitor.
    """
    plan = await session.scalar(
        update(Organization)
        .where(Organization.id == org.org_id)
        .values(plan=Organization.plan, updated_at=Organization.updated_at)  # keeps onupdate= away
        .returning(Organization.plan)
    )
    if plan is None:
        raise NotFound("Organization not found")
    return OrgContext(org_id=org.org_id, plan=plan)


async def create_monitor(
    session: AsyncSession, settings: Settings, org: OrgContext, fields: dict[str, Any], *, now: datetime
) -> Monitor:
    org = await _lock_org(session, org)
    limits = limits_for(org.plan)
    if limits.monitors is not None and await count_monitors(session, org.org_id) >= limits.monitors:
        raise Forbidden(f"Your {org.plan} plan allows {limits.monitors} monitors; upgrade to add more")
    interval = fields.get("interval", max(DEFAULT_INTERVAL, limits.min_interval_seconds))
    fields = {
        "interval": interval,
        "timeout": min(DEFAULT_TIMEOUT, interval) if isinstance(interval, int) else DEFAULT_TIMEOUT,
        "method": "GET",
        "regions": list(settings.default_regions),
        "config": None,
        "expectedStatus": None,
        "expectedKeyword": None,
        "url": None,
        "alertChannelIds": None,
        **fields,
    }
    monitor = Monitor(id=new_id("mon"), org_id=org.org_id, is_active=True, created_at=now, updated_at=now)
    await _apply(session, settings, org, monitor, fields)
    session.add(monitor)
    await session.flush()
    await changes.publish(session, MONITORS_TOPIC, monitor.id)
    await session.commit()
    return monitor


async def update_monitor(
    session: AsyncSession,
    settings: Settings,
    org: OrgContext,
    monitor_id: str,
    fields: dict[str, Any],
    *,
    now: datetime,
) -> Monitor:
    monitor = await get_monitor(session, org.org_id, monitor_id)
    current = {
        "name": monitor.name,
        "type": monitor.type,
        "url": monitor.url,
        "interval": monitor.interval,
        "timeout": monitor.timeout,
        "method": monitor.method,
        "expectedStatus": monitor.expected_status,
        "expectedKeyword": monitor.expected_keyword,
        "regions": monitor.regions,
        "config": monitor.config,
        "alertChannelIds": monitor.alert_channel_ids,
    }
    if fields.get("type", monitor.type) != monitor.type:
        if "config" not in fields:
            current["config"] = None  # another type's config would not validate
        if fields["type"] in PASSIVE_TYPES and "url" not in fields:
            current["url"] = None  # the old type's target (tcp://…, a host) means nothing here
    # Resending a value unchanged (a client PUTting back what it read) is not asking for it anew.
    changed = {name for name, value in fields.items() if current.get(name) != value}
    before = _settings_of(monitor)
    channels_before = monitor.alert_channel_ids
    await _apply(session, settings, org, monitor, {**current, **fields}, changed=changed)
    if monitor.alert_channel_ids != channels_before:
        monitor.updated_at = now  # agents do not care which channels a monitor alerts
    # Compared after validation, which normalizes (a URL, a config's defaults): a PUT that leaves
    # the monitor as it was is no update, neither for updatedAt nor for the agents running it.
    if _settings_of(monitor) != before:
        monitor.updated_at = now
        await changes.publish(session, MONITORS_TOPIC, monitor.id)
    await session.commit()
    return monitor


async def _forget_dependency(
    session: AsyncSession, org_id: str, monitor_id: str, now: datetime | None
) -> None:
    """Takes a deleted monitor out of the dependsOn of its organization's monitors: kept there, it
    would read as a monitor that no longer exists (and a saved copy of the config would not save)."""
    # Ids are 128 random bits: the text match finds the dependents (and nothing else, in practice);
    # the list itself is what decides.
    query = select(Monitor).where(Monitor.org_id == org_id, cast(Monitor.config, Text).contains(monitor_id))
    for dependent in await session.scalars(query):
        config = dict(dependent.config or {})
        depends_on = list(config.get("dependsOn") or ())
        if monitor_id not in depends_on:
            continue
        left = [other for other in depends_on if other != monitor_id]
        if left:
            config["dependsOn"] = left
        else:
            del config["dependsOn"]
        dependent.config = config
        if now is not None:
            dependent.updated_at = now


def _settings_of(monitor: Monitor) -> tuple[Any, ...]:
    """Everything an update can change (what `_apply` sets)."""
    return (
        monitor.name,
        monitor.type,
        monitor.url,
        monitor.interval,
        monitor.timeout,
        monitor.method,
        monitor.expected_status,
        monitor.expected_keyword,
        list(monitor.regions),
        copy.deepcopy(monitor.config),
        monitor.heartbeat_token,
    )


async def _apply(
    session: AsyncSession,
    settings: Settings,
    org: OrgContext,
    monitor: Monitor,
    fields: dict[str, Any],
    changed: set[str] | None = None,
) -> None:
    """Validate the whole resulting monitor (types check their own target and config), then set it."""
    limits = limits_for(org.plan)
    monitor_type = fields["type"]
    if monitor_type == "BROWSER" and not limits.premium_features and (changed is None or "type" in changed):
        raise Forbidden(f"BROWSER monitors need the BUSINESS or ENTERPRISE plan; yours is {org.plan}")
    interval = fields["interval"]
    if interval < limits.min_interval_seconds and (changed is None or "interval" in changed):
        raise Forbidden(
            f"interval: your {org.plan} plan's minimum interval is "
            f"{limits.min_interval_seconds} s (asked {interval} s)"
        )
    if fields["timeout"] > interval:
        raise InvalidInput(f"timeout: must not exceed the interval ({interval} s)")
    url = validate_target(monitor_type, fields["url"])
    config = validate_config(monitor_type, fields["config"])
    regions = fields["regions"]
    known = await known_regions(session, settings, org.org_id)
    unknown = [region for region in regions if region not in known]
    if unknown:
        raise InvalidInput(f"regions: unknown region {unknown[0]!r}; known regions: {', '.join(known)}")
    await _check_incident_rules(session, org.org_id, monitor.id, monitor_type, config, regions)
    channel_ids = fields["alertChannelIds"]
    if channel_ids is not None and (changed is None or "alertChannelIds" in changed):
        await _check_alert_channels(session, org.org_id, channel_ids)
    monitor.name = fields["name"]
    monitor.type = monitor_type
    monitor.url = url
    monitor.interval = interval
    monitor.timeout = fields["timeout"]
    monitor.method = fields["method"]
    monitor.expected_status = fields["expectedStatus"]
    monitor.expected_keyword = fields["expectedKeyword"]
    monitor.regions = list(regions)
    monitor.config = config
    monitor.alert_channel_ids = None if channel_ids is None else list(channel_ids)
    if monitor_type == "HEARTBEAT":
        monitor.heartbeat_token = monitor.heartbeat_token or new_heartbeat_token()
    else:
        monitor.heartbeat_token = None


async def _check_incident_rules(
    session: AsyncSession,
    org_id: str,
    monitor_id: str | None,
    monitor_type: str,
    config: dict[str, Any],
    regions: Sequence[str],
) -> None:
    """What the config alone cannot judge: a quorum within the monitor's regions, dependencies
    that are other monitors of the same organization."""
    quorum = config.get("regionQuorum")
    if quorum is not None and monitor_type not in PASSIVE_TYPES and quorum > len(regions):
        raise InvalidInput(f"config.regionQuorum: must not exceed the monitor's {len(regions)} regions")
    depends_on = list(dict.fromkeys(config.get("dependsOn") or ()))
    if monitor_id is not None and monitor_id in depends_on:
        raise InvalidInput("config.dependsOn: a monitor cannot depend on itself")
    if depends_on:
        found = set(
            await session.scalars(
                select(Monitor.id).where(Monitor.org_id == org_id, Monitor.id.in_(depends_on))
            )
        )
        missing = [d for d in depends_on if d not in found]
        if missing:
            raise InvalidInput(f"config.dependsOn: no monitor {missing[0]!r} in this organization")


async def _check_alert_channels(session: AsyncSession, org_id: str, ids: Sequence[str]) -> None:
    found = set(
        await session.scalars(
            select(AlertChannel.id).where(AlertChannel.org_id == org_id, AlertChannel.id.in_(list(ids)))
        )
    )
    missing = [i for i in ids if i not in found]
    if missing:
        raise InvalidInput(f"alertChannelIds: no alert channel {missing[0]!r} in this organization")


async def set_active(
    session: AsyncSession, org: OrgContext, monitor_id: str, active: bool, *, now: datetime
) -> Monitor:
    if active:
        org = await _lock_org(session, org)
    monitor = await get_monitor(session, org.org_id, monitor_id)
    if active and not monitor.is_active:
        limits = limits_for(org.plan)
        if monitor.type == "BROWSER" and not limits.premium_features:
            raise Forbidden(f"BROWSER monitors need the BUSINESS or ENTERPRISE plan; yours is {org.plan}")
        active_count = await count_monitors(session, org.org_id, active_only=True)
        if limits.monitors is not None and active_count >= limits.monitors:
            raise Forbidden(
                f"Your {org.plan} plan allows {limits.monitors} active monitors; pause another first"
            )
        if monitor.interval < limits.min_interval_seconds:
            monitor.interval = limits.min_interval_seconds  # a downgrade's minimum applies from now on
    if monitor.is_active != active:
        monitor.is_active = active
        monitor.updated_at = now
        await changes.publish(session, MONITORS_TOPIC, monitor.id)
    await session.commit()
    return monitor


async def delete_monitor(
    session: AsyncSession, org_id: str, monitor_id: str, *, now: datetime | None = None
) -> None:
    """Deletes the monitor with its rollups and incidents (foreign keys cascade), then its results
    queued for their rollups, its results and its AI events (no foreign keys there: see CheckResult).
    It leaves its organization's other monitors' dependsOn in the same transaction (`now`: their
    updatedAt).

    The monitor goes while no batch of results is being written (results.exclude_result_writers),
    so none is stored for it afterwards; its results, possibly many, go after that commit, in
    batches, without holding ingestion up.
    """
    monitor = await get_monitor(session, org_id, monitor_id)
    await exclude_result_writers(session)
    await session.execute(delete(Monitor).where(Monitor.id == monitor.id))
    await _forget_dependency(session, monitor.org_id, monitor.id, now)
    await changes.publish(session, MONITORS_TOPIC, monitor.id)
    await session.commit()
    await delete_results_of(session, monitor.id)
    await delete_ai_events_of(session, monitor.id)  # the AI ingest holds the monitor's row as it writes

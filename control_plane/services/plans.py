"""Changing an organization's plan, with the downgrade rules, and the monitor usage plans limit.

A plan change comes from RevenueCat (services/billing.py) or an operator (`traxo orgs set-plan`);
both go through `change_plan`, so a downgrade treats their monitors the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.core import changes
from control_plane.core.ids import new_id
from control_plane.domain.plans import limits_for
from control_plane.models import AuditEvent, Monitor, Organization
from control_plane.services.accounts import AUTH_TOPIC
from control_plane.services.organizations import find_organization
from control_plane.settings import Plan

MONITORS_TOPIC = "monitors"
_BROWSER = "BROWSER"


@dataclass(frozen=True, slots=True)
class IntervalRaise:
    monitor_id: str
    old_interval: int
    new_interval: int


@dataclass(frozen=True, slots=True)
class PlanChange:
    """What a plan change did, for the audit log, the CLI and the webhook's answer."""

    org_id: str
    org_slug: str
    old_plan: str
    new_plan: str
    paused_over_limit: list[str] = field(default_factory=list)  # monitor ids, newest first
    paused_browser: list[str] = field(default_factory=list)
    raised_intervals: list[IntervalRaise] = field(default_factory=list)

    @property
    def plan_changed(self) -> bool:
        return self.old_plan != self.new_plan

    @property
    def changed_monitor_ids(self) -> list[str]:
        ids = [*self.paused_browser, *self.paused_over_limit, *(r.monitor_id for r in self.raised_intervals)]
        return list(dict.fromkeys(ids))

    def describe(self) -> str:
        """One sentence per effect, naming every monitor touched."""
        if not self.plan_changed:
            return f"Organization {self.org_slug} is already on plan {self.new_plan}; nothing changed."
        limits = limits_for(self.new_plan)
        parts = [f"Plan of organization {self.org_slug} changed from {self.old_plan} to {self.new_plan}."]
        if self.paused_browser:
            browser = ", ".join(self.paused_browser)
            parts.append(
                f"Paused {_count(self.paused_browser, 'BROWSER monitor')} ({browser}): "
                f"{self.new_plan} does not include BROWSER checks."
            )
        if self.paused_over_limit:
            parts.append(
                f"Paused {_count(self.paused_over_limit, 'monitor')} over the {self.new_plan} limit of "
                f"{limits.monitors} active monitors, newest first ({', '.join(self.paused_over_limit)})."
            )
        if self.raised_intervals:
            raised = ", ".join(
                f"{r.monitor_id} {r.old_interval} s -> {r.new_interval} s" for r in self.raised_intervals
            )
            parts.append(
                f"Raised the interval of {_count(self.raised_intervals, 'monitor')} to the {self.new_plan} "
                f"minimum of {limits.min_interval_seconds} s ({raised})."
            )
        if len(parts) == 1:
            parts.append("No monitor needed a change.")
        return " ".join(parts)

    def audit_details(self) -> dict[str, object]:
        return {
            "fromPlan": self.old_plan,
            "toPlan": self.new_plan,
            "pausedMonitorIds": [*self.paused_browser, *self.paused_over_limit],
            "pausedOverLimit": self.paused_over_limit,
            "pausedBrowser": self.paused_browser,
            "raisedIntervals": [
                {"monitorId": r.monitor_id, "from": r.old_interval, "to": r.new_interval}
                for r in self.raised_intervals
            ],
        }


def _count(items: list[str] | list[IntervalRaise], noun: str) -> str:
    return f"{len(items)} {noun}{'' if len(items) == 1 else 's'}"


async def change_plan(
    session: AsyncSession,
    org: Organization,
    new_plan: Plan,
    *,
    actor: str,
    now: datetime,
) -> PlanChange:
    """Move `org` to `new_plan` inside the caller's transaction; the caller commits.

    Monitors are kept. On a downgrade: active BROWSER monitors are paused when the plan has no
    premium features, active monitors beyond the plan's count are paused newest first (the oldest
    stay active), and intervals below the plan's minimum are raised to it. One audit event says
    exactly what changed; caches and agent streams hear about every touched monitor.
    """
    # Serializes plan changes of one organization (PostgreSQL); SQLite has one writer anyway.
    locked = await session.scalar(
        select(Organization)
        .where(Organization.id == org.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    org = locked or org
    old_plan = org.plan
    if old_plan == new_plan.value:
        return PlanChange(org.id, org.slug, old_plan, new_plan.value)

    limits = limits_for(new_plan)
    monitors = list(
        await session.scalars(
            select(Monitor).where(Monitor.org_id == org.id).order_by(Monitor.created_at, Monitor.id)
        )
    )
    paused_browser: list[str] = []
    if not limits.premium_features:
        for monitor in monitors:
            if monitor.is_active and monitor.type == _BROWSER:
                monitor.is_active = False
                paused_browser.append(monitor.id)
    paused_over_limit: list[str] = []
    if limits.monitors is not None:
        active = [monitor for monitor in monitors if monitor.is_active]
        for monitor in reversed(active[limits.monitors :]):
            monitor.is_active = False
            paused_over_limit.append(monitor.id)
    raised: list[IntervalRaise] = []
    for monitor in monitors:
        if monitor.interval < limits.min_interval_seconds:
            raised.append(IntervalRaise(monitor.id, monitor.interval, limits.min_interval_seconds))
            monitor.interval = limits.min_interval_seconds

    org.plan = new_plan.value
    org.updated_at = now
    change = PlanChange(org.id, org.slug, old_plan, new_plan.value, paused_over_limit, paused_browser, raised)
    for monitor_id in change.changed_monitor_ids:
        monitor = next(m for m in monitors if m.id == monitor_id)
        monitor.updated_at = now
        await changes.publish(session, MONITORS_TOPIC, monitor_id)
    session.add(
        AuditEvent(
            id=new_id("evt"),
            org_id=org.id,
            action="plan.changed",
            actor=actor,
            message=change.describe(),
            details=change.audit_details(),
            created_at=now,
        )
    )
    await changes.publish(session, AUTH_TOPIC)  # cached principals carry the plan
    await session.flush()
    return change


async def set_plan(
    session: AsyncSession, slug_or_id: str, new_plan: Plan, *, actor: str, now: datetime
) -> PlanChange:
    """An operator's plan change (`traxo orgs set-plan`): one transaction."""
    org = await find_organization(session, slug_or_id)
    change = await change_plan(session, org, new_plan, actor=actor, now=now)
    await session.commit()
    return change


@dataclass(frozen=True, slots=True)
class OrganizationUsage:
    org_id: str
    slug: str
    plan: str
    monitor_count: int


async def list_usage(session: AsyncSession) -> list[OrganizationUsage]:
    """Every organization with its plan and monitor count, for operators (`traxo orgs list`)."""
    counts = select(Monitor.org_id, func.count().label("monitor_count")).group_by(Monitor.org_id).subquery()
    rows = await session.execute(
        select(Organization.id, Organization.slug, Organization.plan, counts.c.monitor_count)
        .outerjoin(counts, counts.c.org_id == Organization.id)
        .order_by(Organization.created_at, Organization.id)
    )
    return [OrganizationUsage(org_id, slug, plan, int(count or 0)) for org_id, slug, plan, count in rows]

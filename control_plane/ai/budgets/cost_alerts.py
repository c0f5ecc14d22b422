"""An LLM monitor's cost alert: its budgets and who is mailed (what /api/monitors/:id/cost-alert
calls). The budget worker (worker.py) sends the mails.

Changing a budget resets that period's marks only when the new budget is above what was already
spent (for the warning mark: when 80% of it is): a raised budget alerts again once it is crossed,
while a budget lowered, or raised but still under the spend, does not mail a second time in the
same period for a crossing already mailed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.ai.budgets.worker import WARNING_SHARE, Spend, spend_of
from control_plane.ai.monitors import llm_monitor
from control_plane.core.errors import NotFound
from control_plane.core.ids import new_id
from control_plane.models import CostAlert

NOT_SET = "No cost alert is set for this monitor"
MAX_ALERT_EMAILS = 20


def parse_alert_emails(text: str) -> list[str]:
    """The comma-separated addresses, each trimmed and checked (syntax only: no DNS), duplicates
    dropped. A ValueError says which entry is wrong."""
    entries = [entry.strip() for entry in text.split(",")]
    if entries == [""]:
        raise ValueError("must name at least one email address")
    addresses: list[str] = []
    for position, entry in enumerate(entries, start=1):
        if not entry:
            raise ValueError(f"entry {position} is empty (addresses are separated by commas)")
        try:
            address = validate_email(entry, check_deliverability=False).normalized
        except EmailNotValidError as exc:
            raise ValueError(f"{entry!r} is not a valid email address ({exc})") from None
        if address.lower() not in (known.lower() for known in addresses):
            addresses.append(address)
    if len(addresses) > MAX_ALERT_EMAILS:
        raise ValueError(f"at most {MAX_ALERT_EMAILS} addresses (got {len(addresses)})")
    return addresses


@dataclass(frozen=True, slots=True)
class Budgets:
    """What a PUT sets: at least one budget (checked at the edge), the validated addresses."""

    daily_usd: float | None
    monthly_usd: float | None
    alert_emails: list[str]


async def _existing(session: AsyncSession, monitor_id: str) -> CostAlert | None:
    return await session.scalar(select(CostAlert).where(CostAlert.monitor_id == monitor_id))


async def get_cost_alert(session: AsyncSession, org_id: str, monitor_id: str) -> CostAlert:
    monitor = await llm_monitor(session, org_id, monitor_id)
    alert = await _existing(session, monitor.id)
    if alert is None:
        raise NotFound(NOT_SET)
    return alert


def _reset_marks(alert: CostAlert, budgets: Budgets, spend: Spend) -> None:
    if budgets.daily_usd is not None and budgets.daily_usd != alert.daily_budget_usd:
        if spend.today < budgets.daily_usd:
            alert.last_daily_alert = None
        if spend.today < WARNING_SHARE * budgets.daily_usd:
            alert.last_daily_warning = None
    if budgets.monthly_usd is not None and budgets.monthly_usd != alert.monthly_budget_usd:
        if spend.month < budgets.monthly_usd:
            alert.last_monthly_alert = None
        if spend.month < WARNING_SHARE * budgets.monthly_usd:
            alert.last_monthly_warning = None


def _apply(alert: CostAlert, budgets: Budgets, spend: Spend, now: datetime) -> None:
    _reset_marks(alert, budgets, spend)
    alert.daily_budget_usd = budgets.daily_usd
    alert.monthly_budget_usd = budgets.monthly_usd
    alert.alert_emails = ", ".join(budgets.alert_emails)
    alert.updated_at = now


async def put_cost_alert(
    session: AsyncSession, org_id: str, monitor_id: str, budgets: Budgets, *, now: datetime
) -> CostAlert:
    """Creates the monitor's cost alert, or replaces its budgets and addresses."""
    monitor = await llm_monitor(session, org_id, monitor_id)
    spend = await spend_of(session, monitor.id, now)
    alert = await _existing(session, monitor.id)
    if alert is None:
        alert = CostAlert(
            id=new_id("ca"), org_id=org_id, monitor_id=monitor.id, alert_emails="", created_at=now
        )
        _apply(alert, budgets, spend, now)
        session.add(alert)
        try:
            await session.commit()
            return alert
        except IntegrityError:  # a concurrent PUT created it first: replace that one
            await session.rollback()
            alert = await _existing(session, monitor.id)
            if alert is None:
                raise
    _apply(alert, budgets, spend, now)
    await session.commit()
    return alert


async def delete_cost_alert(session: AsyncSession, org_id: str, monitor_id: str) -> None:
    alert = await get_cost_alert(session, org_id, monitor_id)
    await session.delete(alert)
    await session.commit()

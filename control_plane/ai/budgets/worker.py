"""The budget worker: each cost alert's spend this UTC day and month (from the hourly rollups)
against its budgets, and the mails — once per period when a budget is crossed, once at 80% of it.

Exactly once with many replicas: a mail's mark (last_daily_alert, last_monthly_warning, ...) is
claimed by compare-and-set before the mail goes, and put back when the send fails, so the next
round tries again. Without an SMTP server nothing is claimed: the mails go once one is set.
"""

from __future__ import annotations

import asyncio
import calendar
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from typing import Literal

from sqlalchemy import ColumnElement, and_, case, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from control_plane.alerts.senders.email import send_message
from control_plane.db import Database
from control_plane.models import AiUsageRollup, CostAlert, Monitor
from control_plane.settings import Settings

log = logging.getLogger(__name__)

WARNING_SHARE = 0.8  # a warning mail at 80% of a budget
SENDS_AT_ONCE = 10
Period = Literal["daily", "monthly"]
Kind = Literal["exceeded", "warning"]

_MARKS: dict[tuple[Period, Kind], InstrumentedAttribute[datetime | None]] = {
    ("daily", "exceeded"): CostAlert.last_daily_alert,
    ("daily", "warning"): CostAlert.last_daily_warning,
    ("monthly", "exceeded"): CostAlert.last_monthly_alert,
    ("monthly", "warning"): CostAlert.last_monthly_warning,
}


def day_start(now: datetime) -> datetime:
    """The UTC midnight that began `now`'s day."""
    return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def month_start(now: datetime) -> datetime:
    return day_start(now).replace(day=1)


def month_end(now: datetime) -> datetime:
    start = month_start(now)
    return start + timedelta(days=calendar.monthrange(start.year, start.month)[1])


@dataclass(frozen=True, slots=True)
class Spend:
    """USD spent by a monitor's priced events this UTC day and this UTC month."""

    today: float
    month: float


def _spend_columns(now: datetime) -> tuple[ColumnElement[float], ColumnElement[float]]:
    today_from, today_to = day_start(now), day_start(now) + timedelta(days=1)
    in_today = and_(AiUsageRollup.hour >= today_from, AiUsageRollup.hour < today_to)
    today = func.coalesce(func.sum(case((in_today, AiUsageRollup.cost_usd), else_=0.0)), 0.0)
    month = func.coalesce(func.sum(AiUsageRollup.cost_usd), 0.0)
    return today, month


def _in_month(now: datetime) -> ColumnElement[bool]:
    return and_(AiUsageRollup.hour >= month_start(now), AiUsageRollup.hour < month_end(now))


async def spend_of(session: AsyncSession, monitor_id: str, now: datetime) -> Spend:
    today, month = _spend_columns(now)
    row = (
        await session.execute(
            select(today, month).where(AiUsageRollup.monitor_id == monitor_id, _in_month(now))
        )
    ).one()
    return Spend(today=float(row[0]), month=float(row[1]))


@dataclass(frozen=True, slots=True)
class DueMail:
    """A mail one cost alert is owed now, its mark claimed at `claimed_at` (was `previous`)."""

    alert_id: str
    monitor_id: str
    monitor_name: str
    recipients: list[str]
    period: Period
    kind: Kind
    spend: float
    budget: float
    previous: datetime | None


def _due(alert: CostAlert, spend: Spend, period: Period, now: datetime) -> tuple[Kind, float] | None:
    budget = alert.daily_budget_usd if period == "daily" else alert.monthly_budget_usd
    if budget is None:
        return None
    spent = spend.today if period == "daily" else spend.month
    if spent >= budget:
        kind: Kind = "exceeded"
    elif spent >= WARNING_SHARE * budget:
        kind = "warning"
    else:
        return None
    mark = getattr(alert, _MARKS[(period, kind)].key)
    period_start = day_start(now) if period == "daily" else month_start(now)
    if mark is not None and mark >= period_start:
        return None  # already mailed this period
    return kind, budget


def recipients_of(alert_emails: str) -> list[str]:
    """The stored list (validated when it was set) as addresses."""
    return [address.strip() for address in alert_emails.split(",") if address.strip()]


async def owed(session: AsyncSession, now: datetime) -> list[DueMail]:
    """The mails cost alerts are owed at `now`: a budget crossed (or 80% of it reached) whose mark
    is from an earlier period, or unset."""
    today, month = _spend_columns(now)
    spend_by_monitor = (
        select(AiUsageRollup.monitor_id, today.label("today"), month.label("month"))
        .join(CostAlert, CostAlert.monitor_id == AiUsageRollup.monitor_id)
        .where(_in_month(now))
        .group_by(AiUsageRollup.monitor_id)
        .subquery()
    )
    rows = await session.execute(
        select(CostAlert, Monitor.name, spend_by_monitor.c.today, spend_by_monitor.c.month)
        .join(Monitor, Monitor.id == CostAlert.monitor_id)
        .join(spend_by_monitor, spend_by_monitor.c.monitor_id == CostAlert.monitor_id)
        .order_by(CostAlert.id)
    )
    owed = []
    for alert, name, spent_today, spent_month in rows.all():
        spend = Spend(today=float(spent_today), month=float(spent_month))
        for period in ("daily", "monthly"):
            due = _due(alert, spend, period, now)
            if due is not None:
                kind, budget = due
                owed.append(
                    DueMail(
                        alert_id=alert.id,
                        monitor_id=alert.monitor_id,
                        monitor_name=name,
                        recipients=recipients_of(alert.alert_emails),
                        period=period,
                        kind=kind,
                        spend=spend.today if period == "daily" else spend.month,
                        budget=budget,
                        previous=getattr(alert, _MARKS[(period, kind)].key),
                    )
                )
    return owed


async def claim(session: AsyncSession, mail: DueMail, now: datetime) -> bool:
    """Compare-and-set: of replicas that all found `mail` owed, one moves its mark into this period
    (True) and sends it; the others find it moved (False). The caller commits."""
    mark = _MARKS[(mail.period, mail.kind)]
    period_start = day_start(now) if mail.period == "daily" else month_start(now)
    result = await session.execute(
        update(CostAlert)
        .where(CostAlert.id == mail.alert_id, or_(mark.is_(None), mark < period_start))
        .values({mark.key: now})
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def _put_back(session: AsyncSession, mail: DueMail, now: datetime) -> None:
    mark = _MARKS[(mail.period, mail.kind)]
    await session.execute(
        update(CostAlert).where(CostAlert.id == mail.alert_id, mark == now).values({mark.key: mail.previous})
    )


def usd(amount: float) -> str:
    """$12.40; below a dollar up to four decimals ($0.0035), as small budgets need."""
    if abs(amount) >= 1 or amount == 0:
        return f"${amount:,.2f}"
    text = f"{amount:.4f}".rstrip("0")
    return "$" + (text if len(text.partition(".")[2]) >= 2 else f"{amount:.2f}")


def forecast(spent: float, now: datetime) -> float:
    """The month's spend at its end if it goes on at the rate so far (at least an hour's worth of
    elapsed time, so the first minutes of a month do not extrapolate a single call)."""
    start, end = month_start(now), month_end(now)
    elapsed = max((now - start).total_seconds(), 3600.0)
    return spent / elapsed * (end - start).total_seconds()


def subject(mail: DueMail) -> str:
    amounts = f"{usd(mail.spend)} of {usd(mail.budget)}"
    if mail.kind == "exceeded":
        return f"[Traxo] {mail.monitor_name}: {mail.period} AI budget exceeded — {amounts}"
    share = math.floor(100 * mail.spend / mail.budget)  # never "100%" for a budget not yet reached
    return f"[Traxo] {mail.monitor_name}: {share}% of the {mail.period} AI budget used — {amounts}"


def body(mail: DueMail, now: datetime, settings: Settings) -> str:
    share = 100 * mail.spend / mail.budget
    if mail.period == "daily":
        when = f"today ({day_start(now):%Y-%m-%d}, UTC)"
    else:
        when = f"this month ({month_start(now):%B %Y}, UTC)"
    state = "over" if mail.kind == "exceeded" else "close to"
    lines = [
        f"{mail.monitor_name} ({mail.monitor_id}) has spent {usd(mail.spend)} on AI {when}: {share:.0f}% "
        f"of its {mail.period} budget of {usd(mail.budget)}, {state} the budget.",
        "",
    ]
    if mail.period == "daily":
        lines.append(f"Today's spend: {usd(mail.spend)} (budget {usd(mail.budget)} per day).")
    else:
        projected = forecast(mail.spend, now)
        lines.append(
            f"Month-end forecast at the current burn rate: {usd(projected)} "
            f"({100 * projected / mail.budget:.0f}% of the monthly budget of {usd(mail.budget)})."
        )
    again = "tomorrow (UTC)" if mail.period == "daily" else "next month"
    lines += [
        "",
        f"This mail is sent once per {'day' if mail.period == 'daily' else 'month'}; the next one "
        f"{again} at the earliest, or sooner if the budget is raised and crossed again.",
        f"Usage: {settings.public_url.rstrip('/')}/api/monitors/{mail.monitor_id}/ai-usage",
        f"Budgets: {settings.public_url.rstrip('/')}/api/monitors/{mail.monitor_id}/cost-alert",
    ]
    return "\n".join(lines) + "\n"


def build_message(mail: DueMail, now: datetime, settings: Settings) -> EmailMessage:
    domain = parseaddr(settings.smtp_from)[1].rpartition("@")[2] or "traxo.local"
    period_key = f"{day_start(now):%Y-%m-%d}" if mail.period == "daily" else f"{month_start(now):%Y-%m}"
    message = EmailMessage()
    message["Subject"] = subject(mail)
    message["From"] = settings.smtp_from
    message["To"] = ", ".join(mail.recipients)
    message["Date"] = format_datetime(now)
    # The same mail of the same period is the same message, should a resend follow a lost answer.
    message["Message-ID"] = f"<{mail.alert_id}.{mail.period}.{mail.kind}.{period_key}@{domain}>"
    message["X-Traxo-Event"] = f"ai.budget.{mail.period}.{mail.kind}"
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(body(mail, now, settings))
    return message


@dataclass(frozen=True, slots=True)
class BudgetRound:
    sent: int
    failed: int


async def check_budgets(db: Database, settings: Settings, now: datetime) -> BudgetRound:
    """One round: every cost alert's spend against its budgets, and the mails owed."""
    async with db.session() as session:
        due = await owed(session, now)
        if not due:
            return BudgetRound(0, 0)
        if not settings.smtp_host:
            log.warning(
                "%d AI budget mail(s) not sent: no SMTP server configured (TRAXO_SMTP_HOST)", len(due)
            )
            return BudgetRound(0, 0)
        claimed = [mail for mail in due if await claim(session, mail, now)]
        await session.commit()
    failed = await _send_all(claimed, now, settings)
    if failed:
        async with db.session() as session:
            for mail in failed:
                await _put_back(session, mail, now)
            await session.commit()
    return BudgetRound(sent=len(claimed) - len(failed), failed=len(failed))


async def _send_all(mails: Sequence[DueMail], now: datetime, settings: Settings) -> list[DueMail]:
    """The mails that could not be sent."""
    limit = asyncio.Semaphore(SENDS_AT_ONCE)

    async def send(mail: DueMail) -> DueMail | None:
        async with limit:
            outcome = await send_message(settings, build_message(mail, now, settings), mail.recipients)
        if outcome.delivered:
            return None
        log.warning(
            "AI budget mail for cost alert %s (%s %s) not sent, retried next round: %s",
            mail.alert_id,
            mail.period,
            mail.kind,
            outcome.error,
        )
        return mail

    results = await asyncio.gather(*(send(mail) for mail in mails))
    return [mail for mail in results if mail is not None]

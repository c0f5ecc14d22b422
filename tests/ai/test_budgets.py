"""The budget worker against a real aiosmtpd server on 127.0.0.1: a crossed daily or monthly budget
mails once per UTC period (again the next), the 80% warning once, the monthly mail's forecast; a
failed send or no SMTP server leaves the mark unset for the next round; two workers mail once; the
job runs in the workers' runner."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from control_plane.ai.budgets.worker import BudgetRound, check_budgets, claim, forecast, owed
from control_plane.core.timefmt import iso
from control_plane.db import Database
from control_plane.settings import Settings
from control_plane.workers.jobs import build_runner
from tests.ai.support import add_spend, insert_llm_monitor
from tests.alert_receivers import SmtpReceiver, smtp_receiver
from tests.clock import MovableClock
from tests.conftest import World
from tests.processes import free_port
from tests.waiting import eventually

# A Friday afternoon in March (31 days): 12.5 days of the month have passed at NOW.
NOW = datetime(2026, 3, 13, 12, 0, tzinfo=UTC)
RECIPIENTS = "alice@example.com, ops@example.com"


def smtp_settings(database_url: str, port: int | None, **overrides: Any) -> Settings:
    options: dict[str, Any] = {
        "database_url": database_url,
        "redis_url": None,
        "smtp_host": "127.0.0.1" if port is not None else None,
        "smtp_port": port or 587,
        "smtp_security": "none",
        "smtp_from": "Traxo Alerts <alerts@traxo.example.com>",
        "smtp_timeout_seconds": 2,
        "public_url": "https://traxo.example.com",
    }
    return Settings(**(options | overrides))


async def budgeted_monitor(
    api: httpx.AsyncClient, world: World, database: Database, **budgets: float | None
) -> str:
    monitor = await insert_llm_monitor(database, world.org_a)
    body = {"dailyBudget": None, "monthlyBudget": None, "alertEmails": RECIPIENTS, **budgets}
    response = await api.put(f"/api/monitors/{monitor.id}/cost-alert", json=body, headers=world.alice.headers)
    assert response.status_code == 200, response.text
    return monitor.id


async def alert_of(api: httpx.AsyncClient, world: World, monitor_id: str) -> dict[str, Any]:
    response = await api.get(f"/api/monitors/{monitor_id}/cost-alert", headers=world.alice.headers)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def plain(server: SmtpReceiver, index: int) -> str:
    return str(server.messages[index].get_content())


def subjects(server: SmtpReceiver) -> list[str]:
    return [str(message["Subject"]) for message in server.messages]


async def test_a_crossed_daily_budget_mails_once_that_day_and_again_the_next(api, world, database, settings):
    monitor_id = await budgeted_monitor(api, world, database, dailyBudget=10)
    await add_spend(database, world.org_a, monitor_id, NOW - timedelta(hours=3), 7.40)
    await add_spend(database, world.org_a, monitor_id, NOW - timedelta(days=1), 50.0)  # yesterday's
    with smtp_receiver() as server:
        config = smtp_settings(settings.database_url, server.port)
        assert await check_budgets(database, config, now=NOW) == BudgetRound(0, 0)  # 7.40: under 80%
        await add_spend(database, world.org_a, monitor_id, NOW - timedelta(hours=1), 5.0)
        assert await check_budgets(database, config, now=NOW) == BudgetRound(sent=1, failed=0)
        await add_spend(database, world.org_a, monitor_id, NOW + timedelta(hours=2), 30.0)
        assert await check_budgets(database, config, now=NOW + timedelta(hours=3)) == BudgetRound(0, 0)
        assert len(server.messages) == 1

        [envelope] = server.envelopes
        assert envelope.mail_from == "alerts@traxo.example.com"
        assert envelope.rcpt_tos == ["alice@example.com", "ops@example.com"]
        [message] = server.messages
        assert message["Subject"] == "[Traxo] Chat assistant: daily AI budget exceeded — $12.40 of $10.00"
        assert message["To"] == RECIPIENTS
        assert message["X-Traxo-Event"] == "ai.budget.daily.exceeded"
        body = plain(server, 0)
        assert "Today's spend: $12.40 (budget $10.00 per day)" in body
        assert "today (2026-03-13, UTC)" in body and "124%" in body
        assert f"https://traxo.example.com/api/monitors/{monitor_id}/ai-usage" in body
        marks = await alert_of(api, world, monitor_id)
        assert marks["lastDailyAlert"] == iso(NOW) and marks["lastMonthlyAlert"] is None

        tomorrow = datetime(2026, 3, 14, 9, 0, tzinfo=UTC)
        await add_spend(database, world.org_a, monitor_id, tomorrow - timedelta(hours=2), 9.0)
        assert await check_budgets(database, config, now=tomorrow) == BudgetRound(sent=1, failed=0)  # 90%
        await add_spend(database, world.org_a, monitor_id, tomorrow, 1.0)
        assert await check_budgets(database, config, now=tomorrow) == BudgetRound(sent=1, failed=0)
        assert await check_budgets(database, config, now=tomorrow + timedelta(hours=1)) == BudgetRound(0, 0)
    assert subjects(server)[1:] == [
        "[Traxo] Chat assistant: 90% of the daily AI budget used — $9.00 of $10.00",
        "[Traxo] Chat assistant: daily AI budget exceeded — $10.00 of $10.00",
    ]
    assert (await alert_of(api, world, monitor_id))["lastDailyAlert"] == iso(tomorrow)


async def test_a_crossed_monthly_budget_mails_once_that_month_with_a_forecast(api, world, database, settings):
    monitor_id = await budgeted_monitor(api, world, database, monthlyBudget=200)
    await add_spend(database, world.org_a, monitor_id, datetime(2026, 3, 1, 0, tzinfo=UTC), 150.0)
    await add_spend(database, world.org_a, monitor_id, datetime(2026, 3, 12, 8, tzinfo=UTC), 62.40)
    await add_spend(database, world.org_a, monitor_id, datetime(2026, 2, 28, 23, tzinfo=UTC), 500.0)
    with smtp_receiver() as server:
        config = smtp_settings(settings.database_url, server.port)
        assert await check_budgets(database, config, now=NOW) == BudgetRound(sent=1, failed=0)
        assert await check_budgets(database, config, now=datetime(2026, 3, 31, 23, 59, tzinfo=UTC)) == (
            BudgetRound(0, 0)
        )
        [message] = server.messages
        assert message["Subject"] == "[Traxo] Chat assistant: monthly AI budget exceeded — $212.40 of $200.00"
        assert message["X-Traxo-Event"] == "ai.budget.monthly.exceeded"
        # $212.40 in 12.5 days of 31: $526.75 by the month's end.
        assert forecast(212.40, NOW) == pytest.approx(212.40 / 12.5 * 31)
        body = plain(server, 0)
        assert "Month-end forecast at the current burn rate: $526.75 (263% of the monthly budget" in body
        assert "this month (March 2026, UTC)" in body
        assert (await alert_of(api, world, monitor_id))["lastMonthlyAlert"] == iso(NOW)

        april = datetime(2026, 4, 2, 0, tzinfo=UTC)
        assert await check_budgets(database, config, now=april) == BudgetRound(0, 0)  # March's spend
        await add_spend(database, world.org_a, monitor_id, datetime(2026, 4, 1, 10, tzinfo=UTC), 200.0)
        assert await check_budgets(database, config, now=april) == BudgetRound(sent=1, failed=0)
    assert subjects(server)[1] == "[Traxo] Chat assistant: monthly AI budget exceeded — $200.00 of $200.00"
    assert "Month-end forecast at the current burn rate: $6,000.00" in plain(server, 1)  # 1 day of 30


async def test_the_80_percent_warning_mails_once_and_the_crossing_still_does(api, world, database, settings):
    monitor_id = await budgeted_monitor(api, world, database, dailyBudget=10, monthlyBudget=100)
    await add_spend(database, world.org_a, monitor_id, NOW, 8.50)
    with smtp_receiver() as server:
        config = smtp_settings(settings.database_url, server.port)
        assert await check_budgets(database, config, now=NOW) == BudgetRound(sent=1, failed=0)
        assert await check_budgets(database, config, now=NOW + timedelta(minutes=5)) == BudgetRound(0, 0)
        assert (await alert_of(api, world, monitor_id))["lastDailyAlert"] is None  # a warning is no alert
        await add_spend(database, world.org_a, monitor_id, NOW - timedelta(hours=1), 92.0)
        assert await check_budgets(database, config, now=NOW + timedelta(minutes=10)) == BudgetRound(2, 0)
        assert await check_budgets(database, config, now=NOW + timedelta(minutes=15)) == BudgetRound(0, 0)
    assert sorted(subjects(server)) == [
        "[Traxo] Chat assistant: 85% of the daily AI budget used — $8.50 of $10.00",
        "[Traxo] Chat assistant: daily AI budget exceeded — $100.50 of $10.00",
        "[Traxo] Chat assistant: monthly AI budget exceeded — $100.50 of $100.00",
    ]
    warning = next(message for message in server.messages if "85%" in str(message["Subject"]))
    assert warning["X-Traxo-Event"] == "ai.budget.daily.warning"
    assert "close to the budget" in str(warning.get_content())


async def test_a_raised_budget_mails_again_once_crossed(api, world, database, settings, clock: MovableClock):
    monitor_id = await budgeted_monitor(api, world, database, dailyBudget=10)
    now = clock()
    await add_spend(database, world.org_a, monitor_id, now, 12.0)
    with smtp_receiver() as server:
        config = smtp_settings(settings.database_url, server.port)
        assert await check_budgets(database, config, now=now) == BudgetRound(sent=1, failed=0)
        raised = {"dailyBudget": 20, "alertEmails": RECIPIENTS}
        url = f"/api/monitors/{monitor_id}/cost-alert"
        assert (await api.put(url, json=raised, headers=world.alice.headers)).status_code == 200
        assert (await alert_of(api, world, monitor_id))["lastDailyAlert"] is None
        assert await check_budgets(database, config, now=now) == BudgetRound(0, 0)  # 12 of 20: 60%
        await add_spend(database, world.org_a, monitor_id, now, 9.0)
        assert await check_budgets(database, config, now=now) == BudgetRound(sent=1, failed=0)
    assert subjects(server)[1] == "[Traxo] Chat assistant: daily AI budget exceeded — $21.00 of $20.00"


async def test_a_failed_send_leaves_the_mark_for_the_next_round(api, world, database, settings, caplog):
    monitor_id = await budgeted_monitor(api, world, database, dailyBudget=10)
    await add_spend(database, world.org_a, monitor_id, NOW, 15.0)
    down = smtp_settings(settings.database_url, free_port())  # nothing listens there
    with caplog.at_level(logging.WARNING, logger="control_plane.ai.budgets.worker"):
        assert await check_budgets(database, down, now=NOW) == BudgetRound(sent=0, failed=1)
    assert "not sent, retried next round: connection refused by 127.0.0.1" in caplog.text
    assert (await alert_of(api, world, monitor_id))["lastDailyAlert"] is None
    with smtp_receiver() as server:
        later = NOW + timedelta(minutes=1)
        config = smtp_settings(settings.database_url, server.port)
        assert await check_budgets(database, config, now=later) == BudgetRound(sent=1, failed=0)
    assert subjects(server) == ["[Traxo] Chat assistant: daily AI budget exceeded — $15.00 of $10.00"]
    assert (await alert_of(api, world, monitor_id))["lastDailyAlert"] == iso(later)


async def test_without_an_smtp_server_nothing_is_marked(api, world, database, settings, caplog):
    monitor_id = await budgeted_monitor(api, world, database, monthlyBudget=5)
    await add_spend(database, world.org_a, monitor_id, NOW, 6.0)
    with caplog.at_level(logging.WARNING, logger="control_plane.ai.budgets.worker"):
        assert await check_budgets(database, smtp_settings(settings.database_url, None), now=NOW) == (
            BudgetRound(0, 0)
        )
    assert "1 AI budget mail(s) not sent: no SMTP server configured (TRAXO_SMTP_HOST)" in caplog.text
    assert (await alert_of(api, world, monitor_id))["lastMonthlyAlert"] is None
    with smtp_receiver() as server:
        config = smtp_settings(settings.database_url, server.port)
        assert await check_budgets(database, config, now=NOW) == BudgetRound(sent=1, failed=0)
    assert len(server.messages) == 1


async def test_of_two_replicas_that_both_find_a_mail_owed_one_claims_it(api, world, database, settings):
    monitor_id = await budgeted_monitor(api, world, database, dailyBudget=1)
    await add_spend(database, world.org_a, monitor_id, NOW, 2.0)
    other = Database(settings.database_url)  # a second replica: its own engine and connections
    try:
        async with database.session() as first, other.session() as second:
            [mine] = await owed(first, NOW)
            [theirs] = await owed(second, NOW)
            assert mine == theirs and (mine.period, mine.kind, mine.previous) == ("daily", "exceeded", None)
            assert await claim(first, mine, NOW)
            await first.commit()
            assert not await claim(second, theirs, NOW + timedelta(seconds=1))
            await second.commit()
    finally:
        await other.dispose()
    assert (await alert_of(api, world, monitor_id))["lastDailyAlert"] == iso(NOW)


async def test_two_workers_at_once_mail_once(api, world, database, settings):
    monitor_ids = [await budgeted_monitor(api, world, database, dailyBudget=1) for _ in range(3)]
    for monitor_id in monitor_ids:
        await add_spend(database, world.org_a, monitor_id, NOW, 2.0)
    others = [Database(settings.database_url) for _ in range(3)]  # replicas with engines of their own
    with smtp_receiver() as server:
        config = smtp_settings(settings.database_url, server.port)
        try:
            for replica in others:  # connected before the race, so none starts late
                async with replica.session() as session:
                    await session.execute(text("SELECT 1"))
            rounds = await asyncio.gather(
                *(check_budgets(replica, config, now=NOW) for replica in [database, *others])
            )
        finally:
            for replica in others:
                await replica.dispose()
    assert sum(done.sent for done in rounds) == 3 and not any(done.failed for done in rounds)
    assert len(server.messages) == 3
    assert len({message["Message-ID"] for message in server.messages}) == 3


async def test_the_workers_run_the_budget_job(api, world, database, settings, clock: MovableClock):
    monitor_id = await budgeted_monitor(api, world, database, dailyBudget=3)
    await add_spend(database, world.org_a, monitor_id, clock(), 4.0)
    with smtp_receiver() as server:
        config = smtp_settings(settings.database_url, server.port, ai_budget_seconds=0.05)
        runner = build_runner(database, config, clock)
        await runner.start()
        try:
            await eventually(lambda: server.messages, what="the budget mail")
        finally:
            await runner.stop()
    assert subjects(server) == ["[Traxo] Chat assistant: daily AI budget exceeded — $4.00 of $3.00"]

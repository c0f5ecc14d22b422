"""Why a check is DOWN: every check in the API carries the agent's error kind and message."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.factories import record, result
from tests.monitor_tools import create_monitor

CHECKED = datetime(2025, 6, 15, 12, 0, tzinfo=UTC)


async def test_a_down_check_says_why_in_the_list_and_the_detail(api, world, database):
    monitor = await create_monitor(api, world.alice)
    await record(
        database,
        [
            result(monitor["id"], CHECKED, status="UP"),
            result(
                monitor["id"],
                CHECKED + timedelta(minutes=1),
                status="DOWN",
                status_code=None,
                error_kind="connection",
                error_message="Connection refused",
            ),
        ],
    )
    listed = (await api.get(f"/api/monitors/{monitor['id']}/checks", headers=world.vera.headers)).json()
    down, up = listed["data"]
    assert (down["status"], down["statusCode"], down["errorKind"], down["error"]) == (
        "DOWN",
        None,
        "connection",
        "Connection refused",
    )
    assert (up["status"], up["errorKind"], up["error"]) == ("UP", None, None)

    detail = (await api.get(f"/api/monitors/{monitor['id']}", headers=world.alice.headers)).json()["data"]
    assert [(c["errorKind"], c["error"]) for c in detail["checks"]] == [
        ("connection", "Connection refused"),
        (None, None),
    ]


async def test_an_up_check_with_a_warning_keeps_it(api, world, database):
    """An SSL check that passes with a near expiry is UP and still says what the warning is."""
    monitor = await create_monitor(api, world.alice)
    await record(
        database,
        [
            result(
                monitor["id"],
                CHECKED,
                status="UP",
                error_kind="cert_expiring",
                error_message="certificate expires in 5 days",
            )
        ],
    )
    listed = (await api.get(f"/api/monitors/{monitor['id']}/checks", headers=world.alice.headers)).json()
    assert listed["data"][0]["errorKind"] == "cert_expiring"
    assert listed["data"][0]["error"] == "certificate expires in 5 days"

"""/api/maintenance: the reference's fields, every rule's 400 naming its field, the filters as the
clock moves, recurring windows (across a DST change in Paris), tenancy and roles."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from control_plane.core.timefmt import iso
from control_plane.db import Database
from tests.clock import MovableClock
from tests.conftest import World
from tests.factories import insert_monitor
from tests.spec import ISO_MS, assert_shape, example

RECURRENCE_FIELDS = {"recurrence": None, "durationMinutes": None, "timezone": None, "nextOccurrence": None}
TIMESTAMPS = {"createdAt": "2025-06-01T00:00:00.000Z", "updatedAt": "2025-06-01T00:00:00.000Z"}


def shaped(reference: dict[str, Any]) -> dict[str, Any]:
    """The reference example plus our documented fields (timestamps and recurrence)."""
    result = copy.deepcopy(reference)
    for item in result["data"] if isinstance(result["data"], list) else [result["data"]]:
        item.update(RECURRENCE_FIELDS, **TIMESTAMPS)
    return result


def reference_body() -> dict[str, Any]:
    return {
        "title": "Database upgrade",
        "description": "Upgrading PostgreSQL to v16",
        "startsAt": "2025-06-20T02:00:00.000Z",
        "endsAt": "2025-06-20T04:00:00.000Z",
    }


async def create(api: httpx.AsyncClient, world: World, **fields: Any) -> dict[str, Any]:
    response = await api.post(
        "/api/maintenance", json={"title": "Window", **fields}, headers=world.alice.headers
    )
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def around(now: datetime, start_hours: float, end_hours: float) -> dict[str, str | None]:
    return {
        "startsAt": iso(now + timedelta(hours=start_hours)),
        "endsAt": iso(now + timedelta(hours=end_hours)),
    }


# --- the reference ------------------------------------------------------------------------------


async def test_create_list_update_delete_as_the_reference_shows(
    api: httpx.AsyncClient, world: World, database: Database
) -> None:
    monitor = await insert_monitor(database, world.org_a, name="Production API")
    response = await api.post(
        "/api/maintenance", json={**reference_body(), "monitorId": monitor.id}, headers=world.adam.headers
    )
    assert response.status_code == 201
    body = response.json()
    assert_shape(body, shaped(example("POST", "/api/maintenance")))
    created = body["data"]
    reference = example("POST", "/api/maintenance")["data"]
    assert created["id"].startswith("mw_")
    for field in ("title", "description", "monitorName", "startsAt", "endsAt", "isActive"):
        assert created[field] == reference[field], field
    assert created["monitorId"] == monitor.id
    assert created | RECURRENCE_FIELDS == created  # a one-off window: no recurrence
    assert ISO_MS.match(created["createdAt"]) and created["updatedAt"] == created["createdAt"]

    listed = (await api.get("/api/maintenance", headers=world.vera.headers)).json()
    assert_shape(listed, shaped(example("GET", "/api/maintenance")))
    assert listed == {"data": [created]}

    response = await api.patch(
        f"/api/maintenance/{created['id']}",
        json={"endsAt": "2025-06-20T06:00:00.000Z"},
        headers=world.alice.headers,
    )
    assert response.status_code == 200
    updated = response.json()
    assert_shape(updated, shaped(example("PATCH", "/api/maintenance/:id")))
    assert updated["data"] == {
        **created,
        "endsAt": "2025-06-20T06:00:00.000Z",
        "updatedAt": updated["data"]["updatedAt"],
    }

    response = await api.delete(f"/api/maintenance/{created['id']}", headers=world.alice.headers)
    assert response.status_code == 200
    assert response.json() == example("DELETE", "/api/maintenance/:id")
    assert (await api.get("/api/maintenance", headers=world.alice.headers)).json() == {"data": []}
    response = await api.delete(f"/api/maintenance/{created['id']}", headers=world.alice.headers)
    assert response.status_code == 404


async def test_org_wide_window_has_no_monitor_and_patch_moves_it_between(
    api: httpx.AsyncClient, world: World, database: Database
) -> None:
    monitor = await insert_monitor(database, world.org_a, name="Checkout")
    window = await create(api, world, **reference_body())
    assert window["monitorId"] is None and window["monitorName"] is None
    url = f"/api/maintenance/{window['id']}"
    moved = (await api.patch(url, json={"monitorId": monitor.id}, headers=world.alice.headers)).json()["data"]
    assert (moved["monitorId"], moved["monitorName"]) == (monitor.id, "Checkout")
    back = (
        await api.patch(url, json={"monitorId": None, "description": None}, headers=world.alice.headers)
    ).json()
    assert (back["data"]["monitorId"], back["data"]["monitorName"], back["data"]["description"]) == (
        None,
        None,
        None,
    )
    other = (
        await api.patch(url, json={"title": "  Renamed  ", "isActive": False}, headers=world.alice.headers)
    ).json()
    assert (other["data"]["title"], other["data"]["isActive"]) == ("Renamed", False)


# --- validation ---------------------------------------------------------------------------------

BAD_CREATES = [
    ({"title": None}, "title"),
    ({"title": ""}, "title"),
    ({"title": "x" * 201}, "title"),
    ({"title": "a\nb"}, "title"),
    ({"startsAt": None}, "startsAt"),
    ({"startsAt": "tomorrow"}, "startsAt"),
    ({"startsAt": "2025-02-30T00:00:00Z"}, "startsAt"),
    ({"startsAt": 1750384800}, "startsAt"),
    ({"startsAt": "9999-12-31T00:00:00Z", "endsAt": "9999-12-31T01:00:00Z"}, "startsAt"),
    ({"endsAt": "2025-06-20T02:00:00.000Z"}, "endsAt"),  # equal to startsAt
    ({"endsAt": "2025-06-20T01:00:00.000Z"}, "endsAt"),
    ({"monitorId": "mon_unknown"}, "monitorId"),
    ({"recurrence": "every day"}, "recurrence"),
    ({"recurrence": "0 3 * * * *", "durationMinutes": 60}, "recurrence"),  # six fields
    ({"recurrence": "0 0 30 2 *", "durationMinutes": 60}, "recurrence"),  # February 30: never
    ({"recurrence": "0 3 * * *"}, "durationMinutes"),
    ({"recurrence": "0 3 * * *", "durationMinutes": 0}, "durationMinutes"),
    ({"recurrence": "0 3 * * *", "durationMinutes": 10081}, "durationMinutes"),
    ({"recurrence": "0 3 * * *", "durationMinutes": 60, "timezone": "Mars/Olympus"}, "timezone"),
    ({"durationMinutes": 60}, "durationMinutes"),  # without recurrence
    ({"timezone": "Europe/Paris"}, "timezone"),
    ({"isActive": True}, "isActive"),  # a new window is enabled; only PATCH sets it
    ({"colour": "red"}, "colour"),
]


@pytest.mark.parametrize(("change", "field"), BAD_CREATES)
async def test_create_rejects_each_bad_field_naming_it(
    api: httpx.AsyncClient, world: World, change: dict[str, Any], field: str
) -> None:
    body = {**reference_body(), **change}
    response = await api.post("/api/maintenance", json=body, headers=world.alice.headers)
    assert response.status_code == 400, response.text
    assert response.json()["error"].startswith(f"{field}: "), response.json()
    assert (await api.get("/api/maintenance", headers=world.alice.headers)).json() == {"data": []}


async def test_create_requires_title_starts_and_ends(api: httpx.AsyncClient, world: World) -> None:
    for field in ("title", "startsAt", "endsAt"):
        body = {key: value for key, value in reference_body().items() if key != field}
        response = await api.post("/api/maintenance", json=body, headers=world.alice.headers)
        assert response.status_code == 400
        assert response.json() == {"error": f"{field}: field required"}


async def test_another_organizations_monitor_is_a_400_naming_monitor_id(
    api: httpx.AsyncClient, world: World, database: Database
) -> None:
    theirs = await insert_monitor(database, world.org_b)
    body = {**reference_body(), "monitorId": theirs.id}
    response = await api.post("/api/maintenance", json=body, headers=world.alice.headers)
    assert response.status_code == 400
    assert response.json()["error"].startswith("monitorId: ")
    window = await create(api, world, **reference_body())
    response = await api.patch(
        f"/api/maintenance/{window['id']}", json={"monitorId": theirs.id}, headers=world.alice.headers
    )
    assert response.status_code == 400
    assert response.json()["error"].startswith("monitorId: ")


async def test_patch_revalidates_the_merged_window(api: httpx.AsyncClient, world: World) -> None:
    window = await create(api, world, **reference_body())
    url = f"/api/maintenance/{window['id']}"
    for change, field in [
        ({"endsAt": "2025-06-20T01:00:00.000Z"}, "endsAt"),  # before the stored startsAt
        ({"startsAt": "2025-06-20T05:00:00.000Z"}, "endsAt"),  # after the stored endsAt
        ({"recurrence": "0 3 * * *"}, "durationMinutes"),
        ({"durationMinutes": 30}, "durationMinutes"),
        ({"title": None}, "title"),
        ({"isActive": "no"}, "isActive"),
    ]:
        response = await api.patch(url, json=change, headers=world.alice.headers)
        assert response.status_code == 400, change
        assert response.json()["error"].startswith(f"{field}: "), (change, response.json())
    stored = (await api.get("/api/maintenance", headers=world.alice.headers)).json()["data"]
    assert stored == [window]  # nothing of the refused changes was kept
    moved = await api.patch(
        url,
        json={"startsAt": "2025-06-21T02:00:00Z", "endsAt": "2025-06-21T04:00:00Z"},
        headers=world.alice.headers,
    )
    assert moved.status_code == 200
    assert (moved.json()["data"]["startsAt"], moved.json()["data"]["endsAt"]) == (
        "2025-06-21T02:00:00.000Z",
        "2025-06-21T04:00:00.000Z",
    )


@pytest.mark.parametrize("value", ["current", "ACTIVE", ""])
async def test_a_bad_filter_is_a_400_naming_filter(api: httpx.AsyncClient, world: World, value: str) -> None:
    response = await api.get("/api/maintenance", params={"filter": value}, headers=world.alice.headers)
    assert response.status_code == 400
    assert response.json()["error"].startswith("filter: ")


# --- filters as time passes ---------------------------------------------------------------------


async def test_filters_follow_the_clock(api: httpx.AsyncClient, world: World, clock: MovableClock) -> None:
    now = clock()
    await create(api, world, title="Past", **around(now, -3, -1))
    await create(api, world, title="Active", **around(now, -1, 1))
    await create(api, world, title="Upcoming", **around(now, 2, 3))
    disabled = await create(api, world, title="Disabled", **around(now, -0.5, 1))
    await api.patch(
        f"/api/maintenance/{disabled['id']}", json={"isActive": False}, headers=world.alice.headers
    )
    await create(
        api, world, title="Daily", recurrence=f"{(now - timedelta(minutes=10)).minute} * * * *",
        durationMinutes=20, **around(now, -24, 24 * 7),
    )  # fmt: skip

    async def titles(filter: str | None = None) -> list[str]:
        params = {"filter": filter} if filter else {}
        response = await api.get("/api/maintenance", params=params, headers=world.vera.headers)
        assert response.status_code == 200
        return [window["title"] for window in response.json()["data"]]

    assert await titles() == ["Daily", "Past", "Active", "Disabled", "Upcoming"]  # by startsAt
    assert await titles("active") == ["Daily", "Active"]
    assert await titles("upcoming") == ["Upcoming"]
    assert await titles("past") == ["Past"]

    clock.advance(timedelta(hours=1, minutes=30))  # Active and Disabled over; Daily between occurrences
    assert await titles("active") == []
    assert await titles("upcoming") == ["Daily", "Upcoming"]
    assert await titles("past") == ["Past", "Active", "Disabled"]

    clock.advance(timedelta(hours=1))  # Upcoming in progress
    assert await titles("active") == ["Upcoming"]
    assert await titles("upcoming") == ["Daily"]


# --- recurring windows --------------------------------------------------------------------------


def last_sunday_of_october(year: int) -> datetime:
    day = datetime(year, 10, 31, tzinfo=UTC)
    return day - timedelta(days=(day.weekday() + 1) % 7)


async def test_recurring_window_next_occurrence_across_the_paris_fall_back(
    api: httpx.AsyncClient, world: World, clock: MovableClock
) -> None:
    """Daily at 02:30 Paris for an hour. On the night clocks go back, 02:30 comes twice: the window
    runs at the first (CEST, 00:30Z) only, and the next day's 02:30 CET is 01:30Z."""
    change = last_sunday_of_october(clock().year + 1)
    window = await create(
        api, world, recurrence="30 2 * * *", durationMinutes=60, timezone="Europe/Paris",
        startsAt=iso(change), endsAt=iso(change + timedelta(days=30)),
    )  # fmt: skip
    assert (window["recurrence"], window["durationMinutes"], window["timezone"]) == (
        "30 2 * * *",
        60,
        "Europe/Paris",
    )
    assert window["nextOccurrence"] == {
        "startsAt": iso(change + timedelta(minutes=30)),
        "endsAt": iso(change + timedelta(minutes=90)),
    }
    # Starting after the first 02:30: the repeated one (01:30Z) is skipped, the next day's is CET.
    url = f"/api/maintenance/{window['id']}"
    later = (
        await api.patch(url, json={"startsAt": iso(change + timedelta(hours=1))}, headers=world.alice.headers)
    ).json()
    monday = (change + timedelta(days=1)).date()
    next_day = datetime(monday.year, monday.month, monday.day, 2, 30, tzinfo=ZoneInfo("Europe/Paris"))
    assert later["data"]["nextOccurrence"] == {
        "startsAt": iso(next_day),
        "endsAt": iso(next_day + timedelta(hours=1)),
    }
    assert iso(next_day) == iso(change + timedelta(days=1, hours=1, minutes=30))


async def test_recurring_window_defaults_to_utc_and_clearing_recurrence_makes_it_one_off(
    api: httpx.AsyncClient, world: World, clock: MovableClock
) -> None:
    now = clock()
    window = await create(api, world, recurrence="0 3 * * 0", durationMinutes=90, **around(now, -1, 24 * 30))
    assert window["timezone"] == "UTC"
    occurrence = window["nextOccurrence"]
    starts = datetime.fromisoformat(occurrence["startsAt"])
    assert (starts.weekday(), starts.hour, starts.minute) == (6, 3, 0)
    assert datetime.fromisoformat(occurrence["endsAt"]) - starts == timedelta(minutes=90)
    url = f"/api/maintenance/{window['id']}"
    paris = (await api.patch(url, json={"timezone": "Europe/Paris"}, headers=world.alice.headers)).json()[
        "data"
    ]
    assert paris["timezone"] == "Europe/Paris"
    assert paris["nextOccurrence"]["startsAt"] != occurrence["startsAt"]
    one_off = (await api.patch(url, json={"recurrence": None}, headers=world.alice.headers)).json()["data"]
    assert one_off | RECURRENCE_FIELDS == one_off
    response = await api.patch(url, json={"timezone": "Europe/Paris"}, headers=world.alice.headers)
    assert response.status_code == 400 and response.json()["error"].startswith("timezone: ")


async def test_a_recurring_series_that_is_over_has_no_next_occurrence(
    api: httpx.AsyncClient, world: World
) -> None:
    window = await create(
        api, world, recurrence="0 3 * * *", durationMinutes=60,
        startsAt="2025-06-01T00:00:00Z", endsAt="2025-06-03T00:00:00Z",
    )  # fmt: skip
    assert window["nextOccurrence"] is None
    past = (await api.get("/api/maintenance?filter=past", headers=world.alice.headers)).json()["data"]
    assert [w["id"] for w in past] == [window["id"]]


async def test_a_series_with_no_occurrence_between_its_bounds_is_a_400(
    api: httpx.AsyncClient, world: World
) -> None:
    body = {**reference_body(), "recurrence": "0 12 * * *", "durationMinutes": 60}  # 02:00-04:00 only
    response = await api.post("/api/maintenance", json=body, headers=world.alice.headers)
    assert response.status_code == 400
    assert response.json()["error"].startswith("recurrence: ")


# --- tenancy and roles --------------------------------------------------------------------------


async def test_another_organizations_window_is_404_and_not_listed(
    api: httpx.AsyncClient, world: World
) -> None:
    window = await create(api, world, **reference_body())
    url = f"/api/maintenance/{window['id']}"
    assert (await api.get("/api/maintenance", headers=world.bob.headers)).json() == {"data": []}
    for response in (
        await api.patch(url, json={"title": "Mine now"}, headers=world.bob.headers),
        await api.delete(url, headers=world.bob.headers),
        await api.patch("/api/maintenance/mw_unknown", json={"title": "x"}, headers=world.alice.headers),
        await api.delete("/api/maintenance/mw_unknown", headers=world.alice.headers),
    ):
        assert response.status_code == 404
        assert response.json() == {"error": "Maintenance window not found"}
    assert (await api.get("/api/maintenance", headers=world.alice.headers)).json()["data"] == [window]


async def test_a_viewer_reads_but_cannot_write(api: httpx.AsyncClient, world: World) -> None:
    window = await create(api, world, **reference_body())
    url = f"/api/maintenance/{window['id']}"
    for response in (
        await api.post("/api/maintenance", json=reference_body(), headers=world.vera.headers),
        await api.patch(url, json={"isActive": False}, headers=world.vera.headers),
        await api.delete(url, headers=world.vera.headers),
    ):
        assert response.status_code == 403
        assert "VIEWER" in response.json()["error"]
    assert (await api.get("/api/maintenance", headers=world.vera.headers)).json()["data"] == [window]


async def test_without_an_organization_or_a_key(api: httpx.AsyncClient, world: World) -> None:
    assert (await api.get("/api/maintenance", headers=world.nora.headers)).status_code == 404
    assert (await api.get("/api/maintenance")).status_code == 401

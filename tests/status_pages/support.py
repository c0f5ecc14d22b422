"""Shared helpers of the status pages' API tests: pages made through the API, the reference's
examples with our documented additions, and the rows the health rules read."""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

import httpx

from control_plane.db import Database
from control_plane.models import CheckRollup
from control_plane.models.incidents import MonitorState, RegionState
from tests.conftest import Account
from tests.spec import assert_shape, example

# What the list, create and update answers add to the reference's page, and to its components.
PAGE_ADDITIONS: dict[str, Any] = {
    "description": None,
    "hideBranding": False,
    "customCss": None,
    "logoUrl": None,
    "faviconUrl": None,
    "domainVerified": False,
    "updatedAt": "2025-06-10T09:00:00.000Z",
}
COMPONENT_ADDITIONS: dict[str, Any] = {"group": None}
# What the public view adds to the reference's.
PUBLIC_ADDITIONS: dict[str, Any] = {
    "description": None,
    "faviconUrl": None,
    "maintenance": [],
    "updatedAt": "2025-06-10T09:00:00.000Z",
}
PUBLIC_COMPONENT_ADDITIONS: dict[str, Any] = {"id": "spc_001", "group": None}


def with_additions(reference: Any, page: dict[str, Any], component: dict[str, Any]) -> Any:
    """The reference's example with our documented fields added to its page(s) and components."""
    result = copy.deepcopy(reference)
    data = result["data"]
    for item in data if isinstance(data, list) else [data]:
        item.update(page)
        for listed in item.get("components", []):
            if isinstance(listed, dict):
                listed.update(component)
    return result


def assert_page_shape(actual: Any, method: str, path: str = "/api/status-pages") -> None:
    assert_shape(actual, with_additions(example(method, path), PAGE_ADDITIONS, COMPONENT_ADDITIONS))


def assert_public_shape(actual: Any) -> None:
    expected = with_additions(
        example("GET", "/api/status-pages/:slug"), PUBLIC_ADDITIONS, PUBLIC_COMPONENT_ADDITIONS
    )
    assert_shape(actual, expected)


async def create_page(api: httpx.AsyncClient, account: Account, **fields: Any) -> dict[str, Any]:
    body = {"name": "Acme Status", "slug": "acme-status", "monitors": [], **fields}
    response = await api.post("/api/status-pages", json=body, headers=account.headers)
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


async def public_view(api: httpx.AsyncClient, slug: str, account: Account | None = None) -> dict[str, Any]:
    headers = account.headers if account is not None else {}
    response = await api.get(f"/api/status-pages/{slug}", headers=headers)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


async def insert_day_rollup(
    db: Database, monitor_id: str, day: datetime, up: int, total: int, region: str = "us-east-1"
) -> None:
    """A day's rollup as the fold writes one (the health reads count and up_count only)."""
    async with db.session() as session:
        session.add(
            CheckRollup(
                monitor_id=monitor_id,
                region=region,
                granularity="day",
                bucket_start=day,
                count=total,
                up_count=up,
                sums={},
                counts={},
                histograms={},
            )
        )
        await session.commit()


async def set_monitor_state(
    db: Database, org_id: str, monitor_id: str, *, down: bool = False, failing_regions: tuple[str, ...] = ()
) -> None:
    """The incident engine's judgement of a monitor: down or not, and which regions fail."""
    async with db.session() as session:
        session.add(MonitorState(monitor_id=monitor_id, org_id=org_id, down=down))
        for region in failing_regions:
            session.add(RegionState(monitor_id=monitor_id, region=region, failing=True))
        await session.commit()

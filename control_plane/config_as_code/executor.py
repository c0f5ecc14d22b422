"""Carrying out a plan through the API, one change at a time, stopping at the first refusal."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from control_plane.config_as_code.client import ApiClient, ApiError
from control_plane.config_as_code.planner import Change, Plan
from control_plane.config_as_code.resources import CHANNELS, MONITORS, PAGES, WINDOWS, Ids, Kind, api_body
from control_plane.config_as_code.state import ServerState

_COLLECTIONS = {
    CHANNELS: "/api/alert-channels",
    MONITORS: "/api/monitors",
    WINDOWS: "/api/maintenance",
    PAGES: "/api/status-pages",
}


class ApplyFailed(Exception):
    """A change the API refused: which, where in the file, why, and what had been applied before."""

    def __init__(self, change: Change, filename: str, error: ApiError, applied: list[Change]) -> None:
        self.change = change
        self.applied = applied
        where = f" ({filename}:{change.line})" if change.line is not None else ""
        super().__init__(f"{change.action} {change.name}{where} failed: {error}")


async def apply_plan(
    client: ApiClient, plan: Plan, state: ServerState, filename: str, echo: Callable[[str], None]
) -> list[Change]:
    ids = Ids(
        channels={remote.key: remote.id for remote in state.resources[CHANNELS]},
        monitors={remote.key: remote.id for remote in state.resources[MONITORS]},
    )
    applied: list[Change] = []
    for change in plan.writes:
        try:
            await _carry_out(client, change, ids)
        except ApiError as exc:
            raise ApplyFailed(change, filename, exc, applied) from exc
        applied.append(change)
        echo(f"  {change.action}d {change.name}")
    return applied


async def _carry_out(client: ApiClient, change: Change, ids: Ids) -> None:
    collection = _COLLECTIONS[change.kind]
    if change.action == "create":
        created = await client.post(collection, api_body(change.kind, change.fields, ids, create=True))
        _remember(change.kind, change.key, created, ids)
        if change.kind is MONITORS and change.fields.get("isActive") is False:
            await client.post(f"{collection}/{created['id']}/pause")
        elif change.kind is WINDOWS and change.fields.get("isActive") is False:
            await client.patch(f"{collection}/{created['id']}", {"isActive": False})
        return
    assert change.remote is not None
    path = f"{collection}/{change.remote.id}"
    if change.action == "delete":
        await client.delete(path)
        return
    body = api_body(change.kind, change.fields, ids, create=False)
    if body:
        if change.kind in (CHANNELS, WINDOWS):
            await client.patch(path, body)
        else:
            await client.put(path, body)
    if change.kind is MONITORS and "isActive" in change.fields:
        await client.post(f"{path}/{'resume' if change.fields['isActive'] else 'pause'}")


def _remember(kind: Kind, key: str, created: Any, ids: Ids) -> None:
    if kind is CHANNELS:
        ids.channels[key] = created["id"]
    elif kind is MONITORS:
        ids.monitors[key] = created["id"]

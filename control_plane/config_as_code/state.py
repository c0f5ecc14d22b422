"""What the organization of the key holds now, read through the API, in file form."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from control_plane.config_as_code.client import ApiClient
from control_plane.config_as_code.resources import (
    CHANNELS,
    MONITORS,
    PAGES,
    WINDOWS,
    Kind,
    Remote,
    channel_fields,
    monitor_fields,
    page_fields,
    window_fields,
)

_CONCURRENT_READS = 8


@dataclass(frozen=True)
class ServerState:
    resources: dict[Kind, list[Remote]]

    def named(self, kind: Kind) -> dict[str, list[Remote]]:
        """The kind's resources by identity (more than one where the organization repeats a name)."""
        found: dict[str, list[Remote]] = defaultdict(list)
        for remote in self.resources[kind]:
            found[remote.key].append(remote)
        return found


async def read_state(client: ApiClient) -> ServerState:
    channels, listed, windows, pages = await asyncio.gather(
        client.get("/api/alert-channels"),
        client.get("/api/monitors"),
        client.get("/api/maintenance"),
        client.get("/api/status-pages"),
    )
    # The list leaves out config, expectedStatus and alert channels: each monitor's detail has them.
    limit = asyncio.Semaphore(_CONCURRENT_READS)

    async def detail(monitor_id: str) -> Any:
        async with limit:
            return await client.get(f"/api/monitors/{monitor_id}")

    monitors = await asyncio.gather(*(detail(monitor["id"]) for monitor in listed))
    channel_names = {channel["id"]: channel["name"] for channel in channels}
    monitor_names = {monitor["id"]: monitor["name"] for monitor in monitors}
    resources = {
        CHANNELS: [Remote(c["id"], c["name"], channel_fields(c)) for c in channels],
        MONITORS: [
            Remote(m["id"], m["name"], monitor_fields(m, channel_names, monitor_names))
            for m in sorted(monitors, key=lambda monitor: monitor["createdAt"])
        ],
        WINDOWS: [Remote(w["id"], w["title"], window_fields(w, monitor_names)) for w in windows],
        # Pages are addressed by slug.
        # The API addresses pages by slug, not id.
        PAGES: [Remote(p["slug"], p["slug"], page_fields(p, monitor_names)) for p in pages],
    }
    return ServerState(resources)

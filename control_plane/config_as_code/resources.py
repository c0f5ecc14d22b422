"""The four kinds of resource in the file's terms: a server's answer as the file would say it (names
for references), a file's resource with the defaults the API applies, how two values compare, and
the API bodies that make a change.

Everything is compared in the file's terms ("file form": references by name), so a plan reads as
the file does and `traxo export` writes what `traxo apply` reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from control_plane.config_as_code import secrets
from control_plane.config_as_code.model import (
    AlertChannel,
    Component,
    FileModel,
    MaintenanceWindow,
    Monitor,
    StatusPage,
)
from control_plane.core.timefmt import parse_iso

# Monitor fields whose default the server picks (the plan's minimum interval, its default
# regions): omitted from the file, whatever the server holds is kept and not compared.
SERVER_CHOICE = frozenset({"interval", "timeout", "regions"})


@dataclass(frozen=True)
class Kind:
    section: str  # the file's list
    label: str  # as the plan names it
    key: str  # the identity field

    def __str__(self) -> str:
        return self.label


CHANNELS = Kind("alertChannels", "alert channel", "name")
MONITORS = Kind("monitors", "monitor", "name")
WINDOWS = Kind("maintenanceWindows", "maintenance window", "title")
PAGES = Kind("statusPages", "status page", "slug")
KINDS = (CHANNELS, MONITORS, WINDOWS, PAGES)  # the order creates and updates go in


@dataclass(frozen=True)
class Remote:
    """A resource on the server: its id, its identity, and its fields in file form."""

    id: str
    key: str
    fields: dict[str, Any]


# The server's answers, in file form.


def channel_fields(channel: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "name": channel["name"],
        "type": channel["type"],
        "config": dict(channel["config"]),
        "isActive": channel["isActive"],
    }


def monitor_fields(
    monitor: Mapping[str, Any], channel_names: Mapping[str, str], monitor_names: Mapping[str, str]
) -> dict[str, Any]:
    config = dict(monitor.get("config") or {})
    if isinstance(config.get("dependsOn"), list):
        config["dependsOn"] = [monitor_names.get(id_, id_) for id_ in config["dependsOn"]]
    channel_ids = monitor.get("alertChannelIds")
    return {
        "name": monitor["name"],
        "type": monitor["type"],
        "url": monitor.get("url"),
        "interval": monitor["interval"],
        "method": monitor["method"],
        "expectedStatus": monitor.get("expectedStatus"),
        "expectedKeyword": monitor.get("expectedKeyword"),
        "timeout": monitor["timeout"],
        "regions": list(monitor["regions"]),
        "config": config,
        "alertChannels": None if channel_ids is None else [channel_names.get(i, i) for i in channel_ids],
        "isActive": monitor["isActive"],
    }


def window_fields(window: Mapping[str, Any], monitor_names: Mapping[str, str]) -> dict[str, Any]:
    monitor_id = window.get("monitorId")
    return {
        "title": window["title"],
        "description": window.get("description"),
        "monitor": None if monitor_id is None else monitor_names.get(monitor_id, monitor_id),
        "startsAt": window["startsAt"],
        "endsAt": window["endsAt"],
        "isActive": window["isActive"],
        "recurrence": window.get("recurrence"),
        "durationMinutes": window.get("durationMinutes"),
        "timezone": window.get("timezone"),
    }


def page_fields(page: Mapping[str, Any], monitor_names: Mapping[str, str]) -> dict[str, Any]:
    components = page.get("components") or []
    return {
        "name": page["name"],
        "slug": page["slug"],
        "description": page.get("description"),
        "customDomain": page.get("customDomain"),
        "isPublic": page["isPublic"],
        "hideBranding": page.get("hideBranding", False),
        "customCss": page.get("customCss"),
        "logoUrl": page.get("logoUrl"),
        "faviconUrl": page.get("faviconUrl"),
        "monitors": in_page_order(
            [
                {
                    "monitor": monitor_names.get(component["monitor"]["id"], component["monitor"]["name"]),
                    "displayName": component["displayName"],
                    "order": component["order"],
                    "group": component.get("group"),
                }
                for component in components
            ]
        ),
    }


def in_page_order(components: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Components as the page shows them: by `order`, and those of one order (which a read may list
    either way) by monitor, name and group, so that a file and a read compare as lists whatever
    order the file lists them in."""
    return sorted(
        components,
        key=lambda c: (c["order"], c["monitor"], c["displayName"], c["group"] or ""),
    )


# The file's resources with the API's defaults: what the server should hold.


def desired_fields(kind: Kind, resource: FileModel) -> dict[str, Any]:
    fields = resource.model_dump()
    if kind is MONITORS:
        for name in SERVER_CHOICE:
            if fields[name] is None:
                del fields[name]
        fields["config"] = _monitor_config(fields["config"])
    elif kind is WINDOWS:
        if fields["timezone"] is None and fields["recurrence"] is not None:
            fields["timezone"] = "UTC"
    elif kind is PAGES:
        assert isinstance(resource, StatusPage)
        fields["monitors"] = in_page_order([_component(item, i) for i, item in enumerate(resource.monitors)])
    return fields


def _component(item: str | Component, place: int) -> dict[str, Any]:
    component = Component(monitor=item) if isinstance(item, str) else item
    return {
        "monitor": component.monitor,
        "displayName": component.displayName or component.monitor,
        "order": place if component.order is None else component.order,
        "group": component.group,
    }


# Comparing a field's wanted value with the server's.


def same(kind: Kind, field: str, wanted: Any, current: Any, channel_type: str | None = None) -> bool:
    if kind is WINDOWS and field in ("startsAt", "endsAt"):
        return _instant(wanted) == _instant(current)
    if kind is PAGES and field == "customDomain" and isinstance(wanted, str):
        return wanted.lower().removesuffix(".") == current
    if kind is CHANNELS and field == "config" and channel_type is not None:
        return not config_changes(channel_type, wanted, current)
    return bool(wanted == current)


def config_changes(channel_type: str, wanted: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """The config keys of a channel whose values differ, secrets compared by their masks."""
    changed = []
    for key in sorted(set(wanted) | set(current)):
        if key not in wanted and secrets.is_secret(channel_type, key):
            continue  # e.g. a webhook secret the server generated: kept
        value, current_value = wanted.get(key), current.get(key)
        if secrets.is_secret(channel_type, key):
            value = secrets.masked(channel_type, key, value)
        else:  # the API trims channels' strings (URLs, addresses)
            value = _stripped(value)
            if key == "recipients":  # and normalizes addresses (their domains in lowercase)
                value, current_value = _lowercase(value), _lowercase(current_value)
        if value != current_value:
            changed.append(key)
    return changed


def _stripped(value: Any) -> Any:
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, list):
        return [item.strip() if isinstance(item, str) else item for item in value]
    return value


def _lowercase(value: Any) -> Any:
    return (
        [item.lower() if isinstance(item, str) else item for item in value]
        if isinstance(value, list)
        else value
    )


def _instant(value: Any) -> Any:
    try:
        return parse_iso(value) if isinstance(value, str) else value
    except (ValueError, OverflowError):
        return value


def _monitor_config(config: Any) -> Any:
    """A monitor's config as the API stores it: assertion values as their string form."""
    if not isinstance(config, dict) or not isinstance(config.get("assertions"), list):
        return config
    assertions = []
    for assertion in config["assertions"]:
        if isinstance(assertion, dict) and "value" in assertion:
            value = assertion["value"]
            if isinstance(value, bool):
                value = "true" if value else "false"
            elif isinstance(value, int | float):
                value = str(value)
            assertion = {**assertion, "value": value}
        assertions.append(assertion)
    return {**config, "assertions": assertions}


# API bodies, references turned into ids.


@dataclass
class Ids:
    """Names to ids, the server's and those created as the apply goes."""

    channels: dict[str, str]
    monitors: dict[str, str]

    def channel(self, name: str) -> str:
        return self.channels[name]

    def monitor(self, name: str) -> str:
        return self.monitors[name]


def api_body(kind: Kind, fields: Mapping[str, Any], ids: Ids, *, create: bool) -> dict[str, Any]:
    body = dict(fields)
    if kind is CHANNELS:
        active = body.pop("isActive", None)
        if active is not None:
            body["enabled" if create else "isActive"] = active
        if not create:
            body.pop("type", None)
    elif kind is MONITORS:
        body.pop("isActive", None)  # pause and resume
        if "alertChannels" in body:
            names = body.pop("alertChannels")
            body["alertChannelIds"] = None if names is None else [ids.channel(name) for name in names]
        config = body.get("config")
        if isinstance(config, dict) and isinstance(config.get("dependsOn"), list):
            body["config"] = {**config, "dependsOn": [ids.monitor(name) for name in config["dependsOn"]]}
    elif kind is WINDOWS:
        if create:
            body.pop("isActive", None)  # a create takes none: a disabled window is patched after
        if "monitor" in body:
            name = body.pop("monitor")
            body["monitorId"] = None if name is None else ids.monitor(name)
        for name in ("timezone", "durationMinutes"):  # not nullable: null is the server's default
            if body.get(name, 0) is None:
                del body[name]
    elif kind is PAGES and "monitors" in body:
        body["monitors"] = [
            {
                "monitorId": ids.monitor(component["monitor"]),
                "displayName": component["displayName"],
                "order": component["order"],
                "group": component["group"],
            }
            for component in body["monitors"]
        ]
    if create:
        body = {name: value for name, value in body.items() if value is not None}
    return body


def references(kind: Kind, resource: FileModel) -> list[tuple[Kind, str, tuple[str | int, ...]]]:
    """What `resource` refers to: (kind, name, path of the reference within the resource)."""
    found: list[tuple[Kind, str, tuple[str | int, ...]]] = []
    if isinstance(resource, Monitor):
        for i, name in enumerate(resource.alertChannels or []):
            found.append((CHANNELS, name, ("alertChannels", i)))
        depends = resource.config.get("dependsOn")
        if isinstance(depends, list):
            for i, name in enumerate(depends):
                if isinstance(name, str):
                    found.append((MONITORS, name, ("config", "dependsOn", i)))
    elif isinstance(resource, MaintenanceWindow) and resource.monitor is not None:
        found.append((MONITORS, resource.monitor, ("monitor",)))
    elif isinstance(resource, StatusPage):
        for i, item in enumerate(resource.monitors):
            name = item if isinstance(item, str) else item.monitor
            found.append(
                (MONITORS, name, ("monitors", i) if isinstance(item, str) else ("monitors", i, "monitor"))
            )
    return found


def channel_type(resource: FileModel) -> str | None:
    return resource.type if isinstance(resource, AlertChannel) else None

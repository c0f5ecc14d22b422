"""Badges of monitors that opted in (`config.publicBadge`): their status or uptime as a shields-style
SVG ("flat": a grey label, a coloured message) and as shields.io endpoint JSON.

A monitor's id routes its badge, so a badge exists only when its monitor asked for one: any other
id, unknown or not opted in, is the same None (the route's 404 does not say which).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from xml.sax.saxutils import escape

from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.models import Monitor
from control_plane.status_pages.health import components_health

MIN_DAYS = 1
MAX_DAYS = 90
DEFAULT_DAYS = 30
MONITOR_ID_LENGTH = 40  # the column's

# What a badge says of a monitor's status: a component's status, as a README reader puts it.
BADGE_STATUSES = ("up", "down", "degraded", "maintenance", "paused", "pending")
_STATUS_WORDS = {
    "operational": "up",
    "degraded": "degraded",
    "partial_outage": "degraded",
    "major_outage": "down",
    "under_maintenance": "maintenance",
}
# shields.io's named colours (the endpoint JSON names them) and the hex the SVG paints.
COLOURS = {
    "brightgreen": "#4c1",
    "green": "#97ca00",
    "yellow": "#dfb317",
    "orange": "#fe7d37",
    "red": "#e05d44",
    "blue": "#007ec6",
    "lightgrey": "#9f9f9f",
}
_STATUS_COLOURS = {
    "up": "brightgreen",
    "down": "red",
    "degraded": "yellow",
    "maintenance": "blue",
    "paused": "lightgrey",
    "pending": "lightgrey",
}
# Uptime at or above each floor takes its colour; below the last, red.
_UPTIME_COLOURS = ((99.9, "brightgreen"), (99.0, "green"), (97.0, "yellow"), (95.0, "orange"))
_LABEL_COLOUR = "#555"

# Advance widths of Verdana at 11px (the font shields measures with), printable ASCII from the
# space to the tilde; other characters are taken as wide as an "m", so a badge is never too narrow.
_ASCII_WIDTHS = (
    3.87, 4.33, 5.05, 9.0, 6.99, 11.84, 7.99, 2.95, 5.0, 5.0, 6.99, 9.0, 4.0, 5.0, 4.0, 5.0,
    6.99, 6.99, 6.99, 6.99, 6.99, 6.99, 6.99, 6.99, 6.99, 6.99, 5.0, 5.0, 9.0, 9.0, 9.0, 6.0,
    11.0, 7.52, 7.54, 7.68, 8.48, 6.96, 6.32, 8.53, 8.27, 4.63, 5.0, 7.62, 6.12, 9.27, 8.23, 8.66,
    6.63, 8.66, 7.65, 7.52, 6.78, 8.05, 7.52, 10.88, 7.54, 6.77, 7.54, 5.0, 5.0, 5.0, 9.0, 6.99,
    6.99, 6.61, 6.85, 5.73, 6.85, 6.55, 3.87, 6.85, 6.96, 3.02, 3.79, 6.51, 3.02, 10.7, 6.96, 6.68,
    6.85, 6.85, 4.69, 5.73, 4.33, 6.96, 6.51, 9.0, 6.51, 6.51, 5.78, 6.98, 5.0, 6.98, 9.0,
)  # fmt: skip
_WIDE = 10.7  # "m"
_PADDING = 10  # each side of a text: 5 px


@dataclass(frozen=True, slots=True)
class Badge:
    label: str
    message: str
    colour: str  # a key of COLOURS
    title: str  # what the image says as a whole (its <title> and aria-label)


def text_width(text: str) -> float:
    """How wide `text` is drawn in Verdana 11px."""
    width = 0.0
    for character in text:
        code = ord(character)
        width += _ASCII_WIDTHS[code - 32] if 32 <= code <= 126 else _WIDE
    return width


def _part_width(text: str) -> int:
    """A part's width: its text rounded up to an odd number of pixels (so the middle of it, where
    the text is anchored, falls on a pixel), plus the padding."""
    width = math.ceil(text_width(text))
    return (width if width % 2 else width + 1) + _PADDING


def render_svg(badge: Badge) -> str:
    """The badge as a standalone SVG document: shields' "flat" style, its text XML-escaped."""
    label_width = _part_width(badge.label)
    message_width = _part_width(badge.message)
    width = label_width + message_width
    label, message = _xml(badge.label), _xml(badge.message)
    title = _xml(badge.title)
    # Text is drawn at 10x and scaled down, as shields does, so its position keeps a decimal.
    label_x = label_width * 5
    message_x = (label_width + message_width / 2) * 10
    label_length = (label_width - _PADDING) * 10
    message_length = (message_width - _PADDING) * 10
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="20" role="img" '
        f'aria-label="{title}">'
        f"<title>{title}</title>"
        '<linearGradient id="s" x2="0" y2="100%">'
        '<stop offset="0" stop-color="#bbb" stop-opacity=".1"/><stop offset="1" stop-opacity=".1"/>'
        "</linearGradient>"
        f'<clipPath id="r"><rect width="{width}" height="20" rx="3" fill="#fff"/></clipPath>'
        '<g clip-path="url(#r)">'
        f'<rect width="{label_width}" height="20" fill="{_LABEL_COLOUR}"/>'
        f'<rect x="{label_width}" width="{message_width}" height="20" fill="{COLOURS[badge.colour]}"/>'
        f'<rect width="{width}" height="20" fill="url(#s)"/>'
        "</g>"
        '<g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif" '
        'text-rendering="geometricPrecision" font-size="110">'
        f'<text aria-hidden="true" x="{label_x}" y="150" fill="#010101" fill-opacity=".3" '
        f'transform="scale(.1)" textLength="{label_length}">{label}</text>'
        f'<text x="{label_x}" y="140" transform="scale(.1)" fill="#fff" '
        f'textLength="{label_length}">{label}</text>'
        f'<text aria-hidden="true" x="{message_x:.0f}" y="150" fill="#010101" fill-opacity=".3" '
        f'transform="scale(.1)" textLength="{message_length}">{message}</text>'
        f'<text x="{message_x:.0f}" y="140" transform="scale(.1)" fill="#fff" '
        f'textLength="{message_length}">{message}</text>'
        "</g></svg>"
    )


def _xml(text: str) -> str:
    """Text for an element or a double-quoted attribute; characters XML 1.0 cannot hold dropped."""
    kept = "".join(c for c in text if _xml_char(c))
    return escape(kept, {'"': "&quot;"})


def _xml_char(character: str) -> bool:
    return (
        character in "\t\n\r"
        or " " <= character <= "\ud7ff"
        or "\ue000" <= character <= "\ufffd"
        or character >= "\U00010000"
    )


def shields_endpoint(badge: Badge) -> dict[str, Any]:
    """shields.io's endpoint schema (https://shields.io/badges/endpoint-badge)."""
    return {"schemaVersion": 1, "label": badge.label, "message": badge.message, "color": badge.colour}


def uptime_message(uptime: float | None) -> str:
    """'99.98%', with no more decimals than it needs ('100%', '99.5%'); 'pending' without data."""
    if uptime is None:
        return "pending"
    # Rounded down: 99.996% is not 100%, which would say no check failed.
    floored = math.floor(uptime * 100) / 100
    return f"{floored:.2f}".rstrip("0").rstrip(".") + "%"


def uptime_colour(uptime: float | None) -> str:
    if uptime is None:
        return "lightgrey"
    for floor, colour in _UPTIME_COLOURS:
        if uptime >= floor:
            return colour
    return "red"


async def _badge_monitor(session: AsyncSession, monitor_id: str) -> Monitor | None:
    if len(monitor_id) > MONITOR_ID_LENGTH:  # no such id: not worth a query
        return None
    monitor = await session.get(Monitor, monitor_id)
    if monitor is None or (monitor.config or {}).get("publicBadge") is not True:
        return None
    return monitor


async def status_badge(session: AsyncSession, monitor_id: str, now: datetime) -> Badge | None:
    """The monitor's status in a word (BADGE_STATUSES), labelled with its name; None unless it opted in."""
    monitor = await _badge_monitor(session, monitor_id)
    if monitor is None:
        return None
    if not monitor.is_active:
        word = "paused"
    elif monitor.last_checked_at is None:
        word = "pending"
    else:
        health = (await components_health(session, [monitor.id], now, days=1)).get(monitor.id)
        if health is None:  # deleted meanwhile
            return None
        word = _STATUS_WORDS.get(health.status, "up")
    return Badge(monitor.name, word, _STATUS_COLOURS[word], f"{monitor.name}: {word}")


async def uptime_badge(session: AsyncSession, monitor_id: str, now: datetime, days: int) -> Badge | None:
    """The monitor's uptime over the last `days` UTC days (today included, maintenance excluded);
    None unless it opted in."""
    monitor = await _badge_monitor(session, monitor_id)
    if monitor is None:
        return None
    health = (await components_health(session, [monitor.id], now, days=days)).get(monitor.id)
    if health is None:  # deleted meanwhile
        return None
    label = f"uptime {days}d"
    message = uptime_message(health.uptime)
    return Badge(label, message, uptime_colour(health.uptime), f"{monitor.name} {label}: {message}")

"""What the results path queues for the engine, in the results' own transaction: one small row per
stored result, with only what the engine reads of it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

# A certificate inside its expiry threshold comes back UP with this kind (agent/checks/ssl.py).
CERT_EXPIRING = "cert_expiring"


def signal_of(
    error_kind: str | None, error_message: str | None, details: dict[str, Any] | None
) -> dict[str, Any] | None:
    """The part of a result's details the engine needs: an SSL check's expiry, a DNS check's answers."""
    if not details:
        return None
    if "days_until_expiry" in details:
        return {
            "expiring": error_kind == CERT_EXPIRING,
            "message": error_message if error_kind == CERT_EXPIRING else None,
            "notAfter": details.get("not_after"),
            "days": details.get("days_until_expiry"),
        }
    answers = details.get("answers")
    if isinstance(answers, list):
        return {"answers": sorted(str(a) for a in answers)}
    return None


def backlog_row(
    *,
    result_id: str,
    monitor_id: str,
    region: str,
    at: datetime,
    up: bool,
    error_kind: str | None,
    error_message: str | None,
    details: dict[str, Any] | None,
    queued_at: datetime,
) -> dict[str, Any]:
    return {
        "result_id": result_id,
        "monitor_id": monitor_id,
        "region": region,
        "checked_at": at,
        "up": up,
        "error": None if up else (error_message or error_kind or "Check failed"),
        "signal": signal_of(error_kind, error_message, details),
        "queued_at": queued_at,
    }

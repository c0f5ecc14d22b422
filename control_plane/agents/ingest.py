"""Results from agents, validated at the edge (convert.py): fence by grant epoch, store through the
results package, and say which were rejected and why."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, select

from control_plane.agents.registry import Registration
from control_plane.core.id_sets import among
from control_plane.db import Database
from control_plane.models import AssignmentGrant, Monitor
from control_plane.results import LastCheckWriter, ResultIn, record_results


class RejectReason(enum.Enum):
    INVALID = "invalid"  # malformed: the agent would send it the same way again
    UNKNOWN_MONITOR = "unknown_monitor"  # the monitor no longer exists
    FENCED = "fenced"  # run without a current grant of the monitor to this agent


@dataclass(frozen=True, slots=True)
class Rejection:
    """A result that is not stored and need not be sent again."""

    result_id: str
    reason: RejectReason
    message: str


@dataclass(frozen=True, slots=True)
class GrantedResult:
    """A valid result and the epoch of the grant the agent ran it under."""

    result: ResultIn
    epoch: int


@dataclass(slots=True)
class IngestOutcome:
    stored: int = 0
    duplicates: int = 0
    rejected: list[Rejection] = field(default_factory=list)


async def ingest_batch(
    db: Database,
    sender: Registration,
    results: Sequence[GrantedResult],
    *,
    last_checks: LastCheckWriter | None = None,
) -> IngestOutcome:
    """Everything accepted is committed when this returns; the caller may then acknowledge.
    (Given a `last_checks` writer, the monitors' lastCheck follows shortly after.)"""
    outcome = IngestOutcome()
    if not results:
        return outcome
    async with db.session() as session:
        # Each named monitor that exists, with this region's grant of it if any: one query per chunk
        # of ids (a batch of 500 is one), by the grants' primary key prefix (monitor, region); a
        # row-value IN over 500 (monitor, region, epoch) triples made PostgreSQL scan the whole region.
        lookup = select(
            Monitor.id,
            AssignmentGrant.epoch,
            AssignmentGrant.member_key,
            AssignmentGrant.revoked_at,
        ).outerjoin(
            AssignmentGrant,
            and_(AssignmentGrant.monitor_id == Monitor.id, AssignmentGrant.region == sender.region),
        )
        rows: list[Any] = []
        for condition in among(session, Monitor.id, {granted.result.monitor_id for granted in results}):
            rows += (await session.execute(lookup.where(condition))).all()
        existing = {row.id for row in rows}
        grants = {(row.id, row.epoch): row for row in rows if row.epoch is not None}
        accepted: list[ResultIn] = []
        for granted in results:
            result, epoch = granted.result, granted.epoch
            grant = grants.get((result.monitor_id, epoch))
            if result.monitor_id not in existing:
                outcome.rejected.append(
                    Rejection(result.id, RejectReason.UNKNOWN_MONITOR, "the monitor no longer exists")
                )
            elif grant is None or grant.member_key != sender.member_key:
                outcome.rejected.append(
                    Rejection(result.id, RejectReason.FENCED, f"no grant of epoch {epoch} to this agent")
                )
            elif (
                grant.revoked_at is not None
                and result.scheduled_at
                and result.scheduled_at >= grant.revoked_at
            ):
                outcome.rejected.append(
                    Rejection(
                        result.id, RejectReason.FENCED, "scheduled after the monitor moved to another agent"
                    )
                )
            else:
                accepted.append(result)
        # Acknowledged without waiting for the incident engine: the workers' job takes the queue.
        recorded = await record_results(session, accepted, last_checks=last_checks, defer_incidents=True)
    outcome.stored = len(recorded.inserted)
    outcome.duplicates = len(recorded.duplicates)
    outcome.rejected.extend(
        Rejection(result_id, RejectReason.UNKNOWN_MONITOR, "the monitor no longer exists")
        for result_id in recorded.orphaned
    )
    return outcome

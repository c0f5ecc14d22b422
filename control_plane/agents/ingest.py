"""Results from agents: validate, fence by grant epoch, store through the results service."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, select

from control_plane.agents.convert import InvalidResult, result_from_proto
from control_plane.agents.id_sets import among
from control_plane.agents.registry import Registration
from control_plane.db import Database
from control_plane.models import AssignmentGrant, Monitor
from control_plane.results import LastCheckWriter, ResultIn, record_results
from traxo_protocol.traxo.agent.v1 import agent_pb2 as pb

Reason = pb.RejectedResult.Reason


@dataclass(slots=True)
class IngestOutcome:
    stored: int = 0
    duplicates: int = 0
    rejected: list[pb.RejectedResult] = field(default_factory=list)


async def ingest_batch(
    db: Database,
    sender: Registration,
    results: Sequence[pb.CheckResult],
    *,
    now: datetime,
    last_checks: LastCheckWriter | None = None,
) -> IngestOutcome:
    """Everything accepted is committed when this returns; the caller may then acknowledge.
    (Given a `last_checks` writer, the monitors' lastCheck follows shortly after.)"""
    outcome = IngestOutcome()
    valid: list[tuple[ResultIn, int]] = []
    for message in results:
        try:
            valid.append(
                (
                    result_from_proto(message, region=sender.region, agent_id=sender.agent_id, now=now),
                    message.epoch,
                )
            )
        except InvalidResult as exc:
            outcome.rejected.append(
                pb.RejectedResult(result_id=message.result_id, reason=Reason.INVALID, message=str(exc))
            )
    if not valid:
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
        for condition in among(session, Monitor.id, {result.monitor_id for result, _ in valid}):
            rows += (await session.execute(lookup.where(condition))).all()
        existing = {row.id for row in rows}
        grants = {(row.id, row.epoch): row for row in rows if row.epoch is not None}
        accepted: list[ResultIn] = []
        for result, epoch in valid:
            grant = grants.get((result.monitor_id, epoch))
            if result.monitor_id not in existing:
                outcome.rejected.append(
                    _reject(result, Reason.UNKNOWN_MONITOR, "the monitor no longer exists")
                )
            elif grant is None or grant.member_key != sender.member_key:
                outcome.rejected.append(
                    _reject(result, Reason.FENCED, f"no grant of epoch {epoch} to this agent")
                )
            elif (
                grant.revoked_at is not None
                and result.scheduled_at
                and result.scheduled_at >= grant.revoked_at
            ):
                outcome.rejected.append(
                    _reject(result, Reason.FENCED, "scheduled after the monitor moved to another agent")
                )
            else:
                accepted.append(result)
        recorded = await record_results(session, accepted, last_checks=last_checks)
    outcome.stored = len(recorded.inserted)
    outcome.duplicates = len(recorded.duplicates)
    outcome.rejected.extend(
        pb.RejectedResult(
            result_id=result_id, reason=Reason.UNKNOWN_MONITOR, message="the monitor no longer exists"
        )
        for result_id in recorded.orphaned
    )
    return outcome


def _reject(result: ResultIn, reason: int, message: str) -> pb.RejectedResult:
    return pb.RejectedResult(result_id=result.id, reason=reason, message=message)  # type: ignore[arg-type]

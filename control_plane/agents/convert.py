"""The one place where protocol messages become domain objects and back; malformed input stops here."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from google.protobuf.timestamp_pb2 import Timestamp

from control_plane.agents.assignment_reads import MonitorAssignment
from control_plane.agents.ingest import GrantedResult, Rejection, RejectReason
from control_plane.agents.watch import AssignmentUpdate, ChangeKind, Resumed, Snapshot
from control_plane.results import ResultIn
from traxo_protocol.traxo.agent.v1 import agent_pb2 as pb

RESULT_ID = re.compile(r"^chk_[a-z2-7]{20,40}$")
MONITOR_ID = re.compile(r"^mon_[a-z0-9]{1,60}$")
_STATUS = {pb.UP: "UP", pb.DOWN: "DOWN"}
_CHANGE_KIND = {
    ChangeKind.ADD: pb.Change.ADD,
    ChangeKind.UPDATE: pb.Change.UPDATE,
    ChangeKind.REMOVE: pb.Change.REMOVE,
}
_REASON = {
    RejectReason.INVALID: pb.RejectedResult.INVALID,
    RejectReason.UNKNOWN_MONITOR: pb.RejectedResult.UNKNOWN_MONITOR,
    RejectReason.FENCED: pb.RejectedResult.FENCED,
}
_MAX_MESSAGE = 2000
_MAX_MS = 86_400_000  # a day: no timing of one check is longer
_MAX_DETAILS = 64 * 1024
_MAX_SCREENSHOT = 5 * 1024 * 1024
# A result claiming to come from further in the future than this is malformed (clock skew aside).
_FUTURE_TOLERANCE = timedelta(minutes=10)


def assignment_to_proto(assignment: MonitorAssignment) -> pb.Assignment:
    return pb.Assignment(
        monitor_id=assignment.monitor_id,
        type=assignment.type,
        target=assignment.target,
        interval_seconds=assignment.interval,
        timeout_seconds=float(assignment.timeout),
        method=assignment.method or "GET",
        expected_status=assignment.expected_status or 0,
        expected_keyword=assignment.expected_keyword or "",
        config_json=json.dumps(assignment.config or {}, separators=(",", ":"), sort_keys=True),
        epoch=assignment.epoch,
    )


def update_to_proto(update: AssignmentUpdate) -> pb.AssignmentUpdate:
    if isinstance(update, Snapshot):
        assignments = [assignment_to_proto(a) for a in update.assignments]
        return pb.AssignmentUpdate(snapshot=pb.Snapshot(version=update.version, assignments=assignments))
    if isinstance(update, Resumed):
        return pb.AssignmentUpdate(resumed=pb.Resumed(version=update.version))
    if update.assignment is None:
        assignment = pb.Assignment(monitor_id=update.monitor_id)
    else:
        assignment = assignment_to_proto(update.assignment)
    change = pb.Change(version=update.version, kind=_CHANGE_KIND[update.kind], assignment=assignment)
    return pb.AssignmentUpdate(change=change)


class InvalidResult(Exception):
    pass


def _time(value: Timestamp) -> datetime:
    return datetime.fromtimestamp(value.seconds + value.nanos / 1e9, UTC)


def results_from_proto(
    messages: Iterable[pb.CheckResult], *, region: str, agent_id: str, now: datetime
) -> tuple[list[GrantedResult], list[Rejection]]:
    """A batch from an agent of `region`: its valid results, and the others rejected as INVALID."""
    valid: list[GrantedResult] = []
    invalid: list[Rejection] = []
    for message in messages:
        try:
            result = result_from_proto(message, region=region, agent_id=agent_id, now=now)
        except InvalidResult as exc:
            invalid.append(Rejection(message.result_id, RejectReason.INVALID, str(exc)))
        else:
            valid.append(GrantedResult(result, message.epoch))
    return valid, invalid


def ack_to_proto(sequence: int, rejected: Iterable[Rejection]) -> pb.ResultAck:
    return pb.ResultAck(
        sequence=sequence,
        rejected=[
            pb.RejectedResult(result_id=r.result_id, reason=_REASON[r.reason], message=r.message)
            for r in rejected
        ],
    )


def result_from_proto(message: pb.CheckResult, *, region: str, agent_id: str, now: datetime) -> ResultIn:
    """Validate one result from an agent of `region`; raises InvalidResult naming what is wrong."""
    if not RESULT_ID.match(message.result_id):
        raise InvalidResult(f"result_id {message.result_id[:60]!r} is not chk_ + base32")
    if not MONITOR_ID.match(message.monitor_id):
        # Checked here, not where it is looked up: PostgreSQL refuses some strings (NUL) outright,
        # and one such id would fail its whole batch over and over.
        raise InvalidResult(f"monitor_id {message.monitor_id[:60]!r} is not a monitor id")
    if message.region and message.region != region:
        raise InvalidResult(f"region {message.region!r} is not the agent's region {region!r}")
    status = _STATUS.get(message.status)
    if status is None:
        raise InvalidResult("status must be UP or DOWN")
    if not message.HasField("finished_at") or not message.HasField("scheduled_at"):
        raise InvalidResult("scheduled_at and finished_at are required")
    checked_at = _time(message.finished_at)
    if checked_at > now + _FUTURE_TOLERANCE:
        raise InvalidResult(f"finished_at {checked_at.isoformat()} is in the future")
    if not 0 <= message.response_time_ms < _MAX_MS:
        raise InvalidResult("response_time_ms out of range")
    details = None
    if message.details_json:
        if len(message.details_json) > _MAX_DETAILS:
            raise InvalidResult("details_json too large")
        try:
            details = json.loads(message.details_json)
        except ValueError as exc:
            raise InvalidResult(f"details_json is not JSON ({exc})") from None
        if not isinstance(details, dict):
            raise InvalidResult("details_json must be a JSON object")
    if message.HasField("size_bytes") and message.size_bytes >= 2**63:  # a bigint column holds it
        raise InvalidResult("size_bytes out of range")
    if message.HasField("screenshot_png") and len(message.screenshot_png) > _MAX_SCREENSHOT:
        raise InvalidResult("screenshot_png too large")

    def optional(field: str) -> float | None:
        if not message.HasField(field):
            return None
        value = float(getattr(message, field))
        if not 0 <= value < _MAX_MS:  # NaN and infinities fail this too
            raise InvalidResult(f"{field} out of range")
        return value

    return ResultIn(
        id=message.result_id,
        monitor_id=message.monitor_id,
        region=region,
        status=status,
        checked_at=checked_at,
        response_time=float(message.response_time_ms),
        status_code=message.status_code if message.HasField("status_code") else None,
        error_kind=message.error_kind[:32] or None,
        error_message=message.error_message[:_MAX_MESSAGE] or None,
        dns=optional("dns_ms"),
        tcp=optional("tcp_ms"),
        tls=optional("tls_ms"),
        ttfb=optional("ttfb_ms"),
        download=optional("download_ms"),
        total=optional("total_ms"),
        size=message.size_bytes if message.HasField("size_bytes") else None,
        details=details,
        scheduled_at=_time(message.scheduled_at),
        agent_id=agent_id,
        screenshot_png=_png(message),
    )


_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _png(message: pb.CheckResult) -> bytes | None:
    if not message.HasField("screenshot_png") or not message.screenshot_png:
        return None
    if not message.screenshot_png.startswith(_PNG_MAGIC):
        raise InvalidResult("screenshot_png is not a PNG image")
    return message.screenshot_png


def timestamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp

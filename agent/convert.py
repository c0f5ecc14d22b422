"""The one conversion module between protocol messages and the agent's domain objects."""

from __future__ import annotations

import json
from collections.abc import Iterable

from google.protobuf.timestamp_pb2 import Timestamp

from agent.checks.base import CheckSpec, Status
from agent.records import Assignment, ResultRecord
from traxo_protocol.traxo.agent.v1 import agent_pb2 as pb

_STATUS = {Status.UP: pb.UP, Status.DOWN: pb.DOWN}


def assignment_from_proto(message: pb.Assignment) -> Assignment:
    """The control plane validated the monitor; this only maps protocol defaults to domain ones."""
    spec = CheckSpec(
        monitor_id=message.monitor_id,
        type=message.type.upper(),
        target=message.target,
        interval_s=max(1, message.interval_seconds),
        timeout_s=message.timeout_seconds or 30.0,
        method=message.method or "GET",
        expected_status=message.expected_status or None,
        expected_keyword=message.expected_keyword or None,
        config=json.loads(message.config_json) if message.config_json else {},
    )
    return Assignment(spec=spec, epoch=message.epoch)


def assignment_to_proto(assignment: Assignment) -> pb.Assignment:
    spec = assignment.spec
    return pb.Assignment(
        monitor_id=spec.monitor_id,
        type=spec.type,
        target=spec.target,
        interval_seconds=spec.interval_s,
        timeout_seconds=spec.timeout_s,
        method=spec.method,
        expected_status=spec.expected_status or 0,
        expected_keyword=spec.expected_keyword or "",
        config_json=json.dumps(spec.config),
        epoch=assignment.epoch,
    )


def result_to_proto(record: ResultRecord) -> pb.CheckResult:
    result, timings = record.result, record.result.timings
    message = pb.CheckResult(
        result_id=record.result_id,
        monitor_id=record.monitor_id,
        epoch=record.epoch,
        region=record.region,
        scheduled_at=_timestamp(record.scheduled_at),
        started_at=_timestamp(record.started_at),
        finished_at=_timestamp(record.finished_at),
        status=_STATUS[result.status],
        response_time_ms=result.response_time_ms,
        status_code=result.status_code,
        error_kind=result.error_kind.value if result.error_kind else "",
        error_message=result.error_message or "",
        dns_ms=timings.dns,
        tcp_ms=timings.tcp,
        tls_ms=timings.tls,
        ttfb_ms=timings.ttfb,
        download_ms=timings.download,
        total_ms=timings.total,
        size_bytes=timings.size,
        details_json=json.dumps(result.details, default=str) if result.details else "",
        screenshot_png=result.screenshot_png,
        type=record.monitor_type,
    )
    return message


def encode_result(record: ResultRecord) -> bytes:
    """Spool payload: a ResultBatch holding just this result.

    Serialized messages concatenate into a merged message, so a batch of spooled payloads is parsed
    with a single call (see batch_from_payloads) instead of one parse per result.
    """
    return pb.ResultBatch(results=[result_to_proto(record)]).SerializeToString()


def batch_from_payloads(payloads: Iterable[bytes]) -> pb.ResultBatch:
    return pb.ResultBatch.FromString(b"".join(payloads))


def _timestamp(unix_seconds: float) -> Timestamp:
    stamp = Timestamp()
    stamp.FromNanoseconds(int(unix_seconds * 1e9))
    return stamp

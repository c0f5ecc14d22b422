import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CheckStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHECK_STATUS_UNSPECIFIED: _ClassVar[CheckStatus]
    UP: _ClassVar[CheckStatus]
    DOWN: _ClassVar[CheckStatus]
CHECK_STATUS_UNSPECIFIED: CheckStatus
UP: CheckStatus
DOWN: CheckStatus

class RegisterRequest(_message.Message):
    __slots__ = ("name", "region", "version", "capabilities")
    NAME_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    name: str
    region: str
    version: str
    capabilities: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., region: _Optional[str] = ..., version: _Optional[str] = ..., capabilities: _Optional[_Iterable[str]] = ...) -> None: ...

class RegisterResponse(_message.Message):
    __slots__ = ("agent_id", "lease_duration", "server_time", "results_renew_lease")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_DURATION_FIELD_NUMBER: _ClassVar[int]
    SERVER_TIME_FIELD_NUMBER: _ClassVar[int]
    RESULTS_RENEW_LEASE_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    lease_duration: _duration_pb2.Duration
    server_time: _timestamp_pb2.Timestamp
    results_renew_lease: bool
    def __init__(self, agent_id: _Optional[str] = ..., lease_duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., server_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., results_renew_lease: _Optional[bool] = ...) -> None: ...

class RenewLeaseRequest(_message.Message):
    __slots__ = ("agent_id",)
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    def __init__(self, agent_id: _Optional[str] = ...) -> None: ...

class RenewLeaseResponse(_message.Message):
    __slots__ = ("held", "lease_duration", "server_time")
    HELD_FIELD_NUMBER: _ClassVar[int]
    LEASE_DURATION_FIELD_NUMBER: _ClassVar[int]
    SERVER_TIME_FIELD_NUMBER: _ClassVar[int]
    held: bool
    lease_duration: _duration_pb2.Duration
    server_time: _timestamp_pb2.Timestamp
    def __init__(self, held: _Optional[bool] = ..., lease_duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., server_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class WatchAssignmentsRequest(_message.Message):
    __slots__ = ("agent_id", "known_version")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    KNOWN_VERSION_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    known_version: int
    def __init__(self, agent_id: _Optional[str] = ..., known_version: _Optional[int] = ...) -> None: ...

class Assignment(_message.Message):
    __slots__ = ("monitor_id", "type", "target", "interval_seconds", "timeout_seconds", "method", "expected_status", "expected_keyword", "config_json", "epoch")
    MONITOR_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_STATUS_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_KEYWORD_FIELD_NUMBER: _ClassVar[int]
    CONFIG_JSON_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    monitor_id: str
    type: str
    target: str
    interval_seconds: int
    timeout_seconds: float
    method: str
    expected_status: int
    expected_keyword: str
    config_json: str
    epoch: int
    def __init__(self, monitor_id: _Optional[str] = ..., type: _Optional[str] = ..., target: _Optional[str] = ..., interval_seconds: _Optional[int] = ..., timeout_seconds: _Optional[float] = ..., method: _Optional[str] = ..., expected_status: _Optional[int] = ..., expected_keyword: _Optional[str] = ..., config_json: _Optional[str] = ..., epoch: _Optional[int] = ...) -> None: ...

class Snapshot(_message.Message):
    __slots__ = ("version", "assignments")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ASSIGNMENTS_FIELD_NUMBER: _ClassVar[int]
    version: int
    assignments: _containers.RepeatedCompositeFieldContainer[Assignment]
    def __init__(self, version: _Optional[int] = ..., assignments: _Optional[_Iterable[_Union[Assignment, _Mapping]]] = ...) -> None: ...

class Resumed(_message.Message):
    __slots__ = ("version",)
    VERSION_FIELD_NUMBER: _ClassVar[int]
    version: int
    def __init__(self, version: _Optional[int] = ...) -> None: ...

class Change(_message.Message):
    __slots__ = ("version", "kind", "assignment")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        KIND_UNSPECIFIED: _ClassVar[Change.Kind]
        ADD: _ClassVar[Change.Kind]
        UPDATE: _ClassVar[Change.Kind]
        REMOVE: _ClassVar[Change.Kind]
    KIND_UNSPECIFIED: Change.Kind
    ADD: Change.Kind
    UPDATE: Change.Kind
    REMOVE: Change.Kind
    VERSION_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    ASSIGNMENT_FIELD_NUMBER: _ClassVar[int]
    version: int
    kind: Change.Kind
    assignment: Assignment
    def __init__(self, version: _Optional[int] = ..., kind: _Optional[_Union[Change.Kind, str]] = ..., assignment: _Optional[_Union[Assignment, _Mapping]] = ...) -> None: ...

class AssignmentUpdate(_message.Message):
    __slots__ = ("snapshot", "resumed", "change")
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    RESUMED_FIELD_NUMBER: _ClassVar[int]
    CHANGE_FIELD_NUMBER: _ClassVar[int]
    snapshot: Snapshot
    resumed: Resumed
    change: Change
    def __init__(self, snapshot: _Optional[_Union[Snapshot, _Mapping]] = ..., resumed: _Optional[_Union[Resumed, _Mapping]] = ..., change: _Optional[_Union[Change, _Mapping]] = ...) -> None: ...

class CheckResult(_message.Message):
    __slots__ = ("result_id", "monitor_id", "epoch", "region", "scheduled_at", "started_at", "finished_at", "status", "response_time_ms", "status_code", "error_kind", "error_message", "dns_ms", "tcp_ms", "tls_ms", "ttfb_ms", "download_ms", "total_ms", "size_bytes", "details_json", "screenshot_png", "type")
    RESULT_ID_FIELD_NUMBER: _ClassVar[int]
    MONITOR_ID_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    SCHEDULED_AT_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    STATUS_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_KIND_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    DNS_MS_FIELD_NUMBER: _ClassVar[int]
    TCP_MS_FIELD_NUMBER: _ClassVar[int]
    TLS_MS_FIELD_NUMBER: _ClassVar[int]
    TTFB_MS_FIELD_NUMBER: _ClassVar[int]
    DOWNLOAD_MS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_MS_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    DETAILS_JSON_FIELD_NUMBER: _ClassVar[int]
    SCREENSHOT_PNG_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    result_id: str
    monitor_id: str
    epoch: int
    region: str
    scheduled_at: _timestamp_pb2.Timestamp
    started_at: _timestamp_pb2.Timestamp
    finished_at: _timestamp_pb2.Timestamp
    status: CheckStatus
    response_time_ms: float
    status_code: int
    error_kind: str
    error_message: str
    dns_ms: float
    tcp_ms: float
    tls_ms: float
    ttfb_ms: float
    download_ms: float
    total_ms: float
    size_bytes: int
    details_json: str
    screenshot_png: bytes
    type: str
    def __init__(self, result_id: _Optional[str] = ..., monitor_id: _Optional[str] = ..., epoch: _Optional[int] = ..., region: _Optional[str] = ..., scheduled_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., finished_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., status: _Optional[_Union[CheckStatus, str]] = ..., response_time_ms: _Optional[float] = ..., status_code: _Optional[int] = ..., error_kind: _Optional[str] = ..., error_message: _Optional[str] = ..., dns_ms: _Optional[float] = ..., tcp_ms: _Optional[float] = ..., tls_ms: _Optional[float] = ..., ttfb_ms: _Optional[float] = ..., download_ms: _Optional[float] = ..., total_ms: _Optional[float] = ..., size_bytes: _Optional[int] = ..., details_json: _Optional[str] = ..., screenshot_png: _Optional[bytes] = ..., type: _Optional[str] = ...) -> None: ...

class ResultBatch(_message.Message):
    __slots__ = ("agent_id", "sequence", "results")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    sequence: int
    results: _containers.RepeatedCompositeFieldContainer[CheckResult]
    def __init__(self, agent_id: _Optional[str] = ..., sequence: _Optional[int] = ..., results: _Optional[_Iterable[_Union[CheckResult, _Mapping]]] = ...) -> None: ...

class RejectedResult(_message.Message):
    __slots__ = ("result_id", "reason", "message")
    class Reason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        REASON_UNSPECIFIED: _ClassVar[RejectedResult.Reason]
        FENCED: _ClassVar[RejectedResult.Reason]
        UNKNOWN_MONITOR: _ClassVar[RejectedResult.Reason]
        INVALID: _ClassVar[RejectedResult.Reason]
    REASON_UNSPECIFIED: RejectedResult.Reason
    FENCED: RejectedResult.Reason
    UNKNOWN_MONITOR: RejectedResult.Reason
    INVALID: RejectedResult.Reason
    RESULT_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    result_id: str
    reason: RejectedResult.Reason
    message: str
    def __init__(self, result_id: _Optional[str] = ..., reason: _Optional[_Union[RejectedResult.Reason, str]] = ..., message: _Optional[str] = ...) -> None: ...

class ResultAck(_message.Message):
    __slots__ = ("sequence", "rejected")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    rejected: _containers.RepeatedCompositeFieldContainer[RejectedResult]
    def __init__(self, sequence: _Optional[int] = ..., rejected: _Optional[_Iterable[_Union[RejectedResult, _Mapping]]] = ...) -> None: ...

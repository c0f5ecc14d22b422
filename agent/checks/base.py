"""The one signature every check type implements, the typed result it returns, and the contract a
check module meets so the registry (agent/checks/__init__.py) can load it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable


class Status(StrEnum):
    UP = "UP"
    DOWN = "DOWN"


class ErrorKind(StrEnum):
    """Why a check is DOWN (or, with UP, what the warning is about)."""

    TIMEOUT = "timeout"
    DNS = "dns"  # name resolution failed
    CONNECTION = "connection"  # refused, reset, unreachable
    TLS = "tls"  # handshake failed, untrusted, hostname mismatch, expired
    HTTP_STATUS = "http_status"  # unexpected status code
    KEYWORD = "keyword"  # expectedKeyword missing
    ASSERTION = "assertion"  # a config assertion failed
    PACKET_LOSS = "packet_loss"
    DNS_ANSWER = "dns_answer"  # DNS answered, but not what was expected
    CERT_EXPIRING = "cert_expiring"  # a warning: UP, but expiry is near
    BROWSER_STEP = "browser_step"
    UNSUPPORTED = "unsupported"  # this agent cannot run the type (capability missing)
    INTERNAL = "internal"  # a bug in the agent; never a user's fault


class CheckError(Exception):
    """Raised inside a check where a third-party error is converted; run() turns it into a result."""

    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


@dataclass(frozen=True, slots=True)
class CheckSpec:
    """What to check: a validated, immutable view of an assignment."""

    monitor_id: str
    type: str  # HTTP, TCP, PING, DNS, SSL, BROWSER
    target: str  # the monitor's url/host as the API stored it
    interval_s: int
    timeout_s: float
    method: str = "GET"
    expected_status: int | None = None
    expected_keyword: str | None = None
    config: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Timings:
    """Phase timings in milliseconds (size in bytes); None where a phase did not happen."""

    dns: float | None = None
    tcp: float | None = None
    tls: float | None = None
    ttfb: float | None = None
    download: float | None = None
    total: float | None = None
    size: int | None = None


@dataclass(slots=True)
class CheckResult:
    status: Status
    response_time_ms: float
    status_code: int | None = None
    error_kind: ErrorKind | None = None
    error_message: str | None = None
    timings: Timings = field(default_factory=Timings)
    # Type-specific facts: certificate expiry, DNS answers, packet loss, browser step timings...
    details: dict[str, Any] = field(default_factory=dict)
    screenshot_png: bytes | None = None


CheckRunner = Callable[[CheckSpec], Awaitable[CheckResult]]


# A check module meets these structurally, as a module. Each one says which under TYPE_CHECKING
# (`_contract: CheckModule = <itself>`, at its end), so mypy holds its signatures to the contract; the
# registry checks the names again at load, since it imports the modules by name. The hooks are
# separate protocols because a module needs them only for what it owns: a host it may not run on, or
# resources to release.


@runtime_checkable
class CheckModule(Protocol):
    """Every check module: runs its type's check, turning every failure into a DOWN result."""

    async def run(self, check: CheckSpec) -> CheckResult: ...


@runtime_checkable
class AvailabilityHook(Protocol):
    """A module whose type may not run on every host (raw sockets, a browser), asked once at start.

    A plain `available()` runs in a worker thread, since probes such as an ICMP echo block.
    """

    def available(self) -> bool | Awaitable[bool]: ...


@runtime_checkable
class CloseHook(Protocol):
    """A module holding shared resources (sessions, a browser) to release at shutdown."""

    async def aclose(self) -> None: ...

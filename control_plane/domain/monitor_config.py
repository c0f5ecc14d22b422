"""What a monitor of each type may check and how: target (`url`) and `config` rules per type.

docs/monitor-config.md is the user-facing version of this module and of monitor_targets.py.
Everything here raises InvalidInput naming the field, so the API answers 400 and the agent can
trust what it receives.
"""

from __future__ import annotations

import re
import ssl
from typing import Annotated, Any, Literal

from jsonpath_ng.ext import parse as parse_jsonpath  # the agent's parser: filters like [?(@.x)]
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
)

from control_plane.core.errors import InvalidInput
from control_plane.domain.incident_rules import HeartbeatConfig, IncidentRules
from control_plane.domain.monitor_targets import (
    PASSIVE_TYPES as PASSIVE_TYPES,  # re-exported for older importers
)
from control_plane.domain.monitor_targets import URL_TYPES as URL_TYPES
from control_plane.domain.monitor_targets import host_name, host_port, http_url

MONITOR_TYPES = ("HTTP", "TCP", "PING", "DNS", "SSL", "HEARTBEAT", "BROWSER", "LLM")
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")

REGION_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


def _as_text(value: object) -> object:
    """Assertion values are stored as text; JSON numbers and booleans are taken in their JSON form."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value  # a string stays; anything else fails the str check, naming the field


def _as_number_text(value: object) -> str:
    text = _as_text(value)
    if isinstance(value, bool) or not isinstance(text, str) or not re.match(r"^-?\d+(\.\d+)?$", text):
        raise ValueError("must be a number")
    return text


AssertionValue = Annotated[str, BeforeValidator(_as_text), StringConstraints(max_length=2048)]
NumericValue = Annotated[str, BeforeValidator(_as_number_text)]


class SharedConfig(IncidentRules):
    """Accepted in every monitor type's config: the incident rules, and whether the monitor's badges
    (/badge/{id}/...) answer anyone who asks (its id routes them: off unless asked for)."""

    publicBadge: bool = False


class StatusCodeAssertion(_Strict):
    type: Literal["status_code"]
    operator: Literal["equals", "not_equals", "greater_than", "less_than"]
    value: NumericValue


class ResponseTimeAssertion(_Strict):
    type: Literal["response_time"]
    operator: Literal["less_than", "greater_than"]
    value: NumericValue


class JsonPathAssertion(_Strict):
    type: Literal["json_path"]
    path: Annotated[str, StringConstraints(min_length=1, max_length=500)]
    operator: Literal["equals", "not_equals", "contains"]
    value: AssertionValue

    @field_validator("path")
    @classmethod
    def _parses(cls, path: str) -> str:
        try:
            parse_jsonpath(path)
        except Exception as exc:  # jsonpath-ng raises several types for syntax errors
            raise ValueError(f"is not a valid JSONPath ({exc})") from None
        return path


class HeaderAssertion(_Strict):
    type: Literal["header"]
    name: Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=_HEADER_NAME.pattern)]
    operator: Literal["equals", "not_equals", "contains"]
    value: AssertionValue


Assertion = Annotated[
    StatusCodeAssertion | ResponseTimeAssertion | JsonPathAssertion | HeaderAssertion,
    Field(discriminator="type"),
]


class HttpConfig(SharedConfig):
    method: Literal[HTTP_METHODS] | None = None  # type: ignore[valid-type]
    headers: dict[str, Annotated[str, StringConstraints(max_length=8192)]] | None = None
    body: Annotated[str, StringConstraints(max_length=65536)] | None = None
    followRedirects: bool | None = None
    verifyTls: bool | None = None
    assertions: Annotated[list[Assertion], Field(max_length=20)] | None = None

    @field_validator("headers")
    @classmethod
    def _header_names(cls, headers: dict[str, str] | None) -> dict[str, str] | None:
        if headers is not None:
            if len(headers) > 50:
                raise ValueError("at most 50 headers")
            for name, value in headers.items():
                if not _HEADER_NAME.match(name):
                    raise ValueError(f"{name!r} is not a valid header name")
                # RFC 9110 field values: no control characters but tab (CR/LF would inject headers).
                if any((ord(ch) < 32 and ch != "\t") or ord(ch) == 127 for ch in value):
                    raise ValueError(f"value of {name!r} must not contain line breaks or control characters")
        return headers


Selector = Annotated[str, StringConstraints(min_length=1, max_length=1000)]
StepTimeout = Annotated[float, Field(ge=0.1, le=60)]


class _Step(_Strict):
    timeout: StepTimeout | None = None


class GotoStep(_Step):
    action: Literal["goto"]
    url: str

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        return http_url(url)


class ClickStep(_Step):
    action: Literal["click"]
    selector: Selector


class FillStep(_Step):
    action: Literal["fill", "select"]
    selector: Selector
    value: Annotated[str, StringConstraints(max_length=10000)]


class PressStep(_Step):
    action: Literal["press"]
    key: Annotated[str, StringConstraints(min_length=1, max_length=50)]
    selector: Selector | None = None


class WaitStep(_Step):
    action: Literal["wait_for_selector"]
    selector: Selector
    state: Literal["attached", "detached", "visible", "hidden"] | None = None


class ExpectTextStep(_Step):
    action: Literal["expect_text"]
    text: Annotated[str, StringConstraints(min_length=1, max_length=10000)]
    selector: Selector | None = None


class ExpectValueStep(_Step):
    action: Literal["expect_url", "expect_title"]
    value: Annotated[str, StringConstraints(min_length=1, max_length=2048)]


class ScreenshotStep(_Step):
    action: Literal["screenshot"]


BrowserStep = Annotated[
    GotoStep
    | ClickStep
    | FillStep
    | PressStep
    | WaitStep
    | ExpectTextStep
    | ExpectValueStep
    | ScreenshotStep,
    Field(discriminator="action"),
]


class Viewport(_Strict):
    width: Annotated[int, Field(ge=320, le=3840)]
    height: Annotated[int, Field(ge=240, le=2160)]


class BrowserConfig(SharedConfig):
    steps: Annotated[list[BrowserStep], Field(max_length=50)] | None = None
    stepTimeout: StepTimeout | None = None
    viewport: Viewport | None = None


class PingConfig(SharedConfig):
    count: Annotated[int, Field(ge=1, le=10)] | None = None
    interval: Annotated[float, Field(ge=0.2, le=5)] | None = None
    packetTimeout: Annotated[float, Field(ge=0.2, le=10)] | None = None
    lossThresholdPercent: Annotated[float, Field(ge=1, le=100)] | None = None


class DnsConfig(SharedConfig):
    recordType: Literal["A", "AAAA", "CNAME", "MX", "NS", "TXT", "SOA", "CAA", "SRV"] | None = None
    resolver: str | None = None
    protocol: Literal["UDP", "TCP"] | None = None
    expectedValues: (
        Annotated[list[Annotated[str, StringConstraints(max_length=1000)]], Field(max_length=50)] | None
    ) = None
    matchMode: Literal["contains", "exact"] | None = None
    expectedRcode: Literal["NOERROR", "NXDOMAIN", "SERVFAIL", "REFUSED"] | None = None

    @field_validator("resolver")
    @classmethod
    def _resolver(cls, value: str | None) -> str | None:
        if value is not None:
            host_port(value, port_required=False)
        return value


class SslConfig(SharedConfig):
    expiryThresholdDays: Annotated[int, Field(ge=1, le=365)] | None = None
    caBundle: Annotated[str, StringConstraints(max_length=262144)] | None = None
    serverName: str | None = None

    @field_validator("caBundle")
    @classmethod
    def _pem(cls, value: str | None) -> str | None:
        if value is not None:
            if "-----BEGIN CERTIFICATE-----" not in value:
                raise ValueError("must be PEM text with at least one CERTIFICATE block")
            try:
                ssl.create_default_context(cadata=value)
            except (ssl.SSLError, ValueError) as exc:
                raise ValueError(f"is not a readable PEM CA bundle ({exc})") from None
        return value

    @field_validator("serverName")
    @classmethod
    def _server_name(cls, value: str | None) -> str | None:
        if value is not None:
            host_name(value)
        return value


class EmptyConfig(SharedConfig):
    """TCP and LLM: nothing of their own, the shared keys only."""


class HeartbeatMonitorConfig(HeartbeatConfig, SharedConfig):
    """HEARTBEAT: its schedule and the keys every type takes."""


CONFIG_MODELS: dict[str, type[BaseModel]] = {
    "HTTP": HttpConfig,
    "BROWSER": BrowserConfig,
    "TCP": EmptyConfig,
    "PING": PingConfig,
    "DNS": DnsConfig,
    "SSL": SslConfig,
    "HEARTBEAT": HeartbeatMonitorConfig,
    "LLM": EmptyConfig,
}


def validate_config(monitor_type: str, config: dict[str, Any] | None) -> dict[str, Any]:
    """The config as stored: only the keys given with a value, normalized (assertion values as text).

    Explicit nulls are dropped: the agent reads a missing key as "use the default".
    """
    if config is None:
        return {}
    model = CONFIG_MODELS[monitor_type]
    try:
        parsed = model.model_validate(config)
    except ValidationError as exc:
        raise InvalidInput(_describe(monitor_type, exc.errors()[0])) from None
    return parsed.model_dump(mode="json", exclude_unset=True, exclude_none=True)


_TAGGED_LISTS = ("assertions", "steps")  # lists of discriminated unions


def _describe(monitor_type: str, error: Any) -> str:
    """'config.<path>: <rule>', the path as the client wrote it."""
    loc: list[str] = ["config"]
    parts = list(error["loc"])
    for index, part in enumerate(parts):
        # pydantic puts the union's tag after the list index ("assertions.0.status_code.value").
        if index >= 2 and isinstance(parts[index - 1], int) and parts[index - 2] in _TAGGED_LISTS:
            continue
        loc.append(str(part))
    message = str(error["msg"]).removeprefix("Value error, ")
    kind = error["type"]
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        discriminator = str(error["ctx"]["discriminator"]).strip("'")
        loc.append(discriminator)
        if kind == "union_tag_not_found":
            message = "field required"
        else:
            expected = str(error["ctx"]["expected_tags"]).replace("'", "")
            message = f"{error['ctx']['tag']!r} is not one of {expected}"
    elif kind == "missing":
        message = "field required"
    elif kind == "extra_forbidden":
        message = f"unknown field for a {monitor_type} monitor"
    return f"{'.'.join(loc)}: {message}"

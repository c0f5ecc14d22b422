"""The control plane's logs: plain text (the default) or one JSON object a line, every record of a
request carrying its request id, and secrets masked in whatever a record says."""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Iterable
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

__all__ = [
    "REQUEST_ID",
    "JsonFormatter",
    "LogFormat",
    "MaskSecrets",
    "SecretMasker",
    "TextFormatter",
    "configure_logging",
    "request_id_from",
    "secret_values",
]

LogFormat = Literal["text", "json"]

# The id of the request this code runs for; the middleware sets it, every log record reads it.
REQUEST_ID: ContextVar[str | None] = ContextVar("traxo_request_id", default=None)

# A client's X-Request-ID is kept when it is 1-128 visible ASCII characters (no spaces, no control
# characters: it goes into log lines and back into a header as it came).
_CLIENT_ID = re.compile(rb"[\x21-\x7e]{1,128}")


def request_id_from(header: bytes | None) -> str:
    """The client's X-Request-ID when it is a valid one, else a new id (32 hex digits).

    os.urandom(16).hex() costs ~0.4 µs, uuid4().hex ~1.8 µs: this runs on every request."""
    if header is not None and _CLIENT_ID.fullmatch(header):
        return header.decode("ascii")
    return os.urandom(16).hex()


# -- secrets ---------------------------------------------------------------------------------------

_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # API keys (traxo_ + 43 url-safe characters) and agent tokens (traxo_agent_ + 43); "traxo_protocol"
    # in a traceback's paths is too short to match.
    (re.compile(r"\btraxo_[A-Za-z0-9_-]{16,}"), "traxo_***"),
    # Heartbeat tokens route pings (/api/heartbeat/hb_...): whoever has one can ping.
    (re.compile(r"\bhb_[A-Za-z0-9_-]{16,}"), "hb_***"),
    # Webhook signing secrets.
    (re.compile(r"\bwhsec_[A-Za-z0-9+/=_-]{8,}"), "whsec_***"),
    # Authorization header values.
    (re.compile(r"(?i)\b(bearer|basic)\s+[^\s\"',;]+"), r"\1 ***"),
    # Passwords in URLs: postgresql://user:***@host, redis://:***@host.
    (re.compile(r"(://[^/\s:@]*:)[^@\s/]+@"), r"\1***@"),
    # key=value and key: value forms (a DSN's password=..., a query's token=...).
    (
        re.compile(r"(?i)\b((?:password|passwd|secret|api[_-]?key|token)[\"']?\s*[=:]\s*[\"']?)[^\s\"'&,;]+"),
        r"\1***",
    ),
]

# Settings whose names say they hold a secret (smtp_password, revenuecat_secret_key,
# revenuecat_webhook_secret, metrics_token, ...): their values are masked wherever they appear.
_SECRET_SETTING = re.compile(r"password|secret|token")
_URL_PASSWORD = re.compile(r"://[^/\s:@]*:([^@\s/]+)@")
# Shorter literals would mask ordinary words; a short password is still masked in its URL.
_MIN_LITERAL = 6


def secret_values(settings: Any) -> list[str]:
    """The secrets a Settings object holds: named ones, and the passwords of its URLs."""
    found: list[str] = []
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if not isinstance(value, str) or not value:
            continue
        if _SECRET_SETTING.search(name):
            found.append(value)
        elif name.endswith("_url"):
            found.extend(match.group(1) for match in _URL_PASSWORD.finditer(value))
    return found


class SecretMasker:
    """Replaces known secret shapes and the given literal values with ***."""

    def __init__(self, literals: Iterable[str] = ()) -> None:
        kept = sorted({value for value in literals if len(value) >= _MIN_LITERAL}, key=len, reverse=True)
        self._literals = re.compile("|".join(re.escape(value) for value in kept)) if kept else None

    def mask(self, text: str) -> str:
        if self._literals is not None:
            text = self._literals.sub("***", text)
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        return text


# What every LogRecord has; anything else on a record is an extra field (logger.info(..., extra={})).
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {
    "message",
    "asctime",
    "request_id",
    "color_message",
}


class MaskSecrets(logging.Filter):
    """Rewrites a record before any formatter sees it: its message (arguments merged in), its
    exception's and stack's text and its string extras, secrets masked."""

    def __init__(self, masker: SecretMasker) -> None:
        super().__init__()
        self._masker = masker
        self._formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        mask = self._masker.mask
        record.msg = mask(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask(record.exc_text)
        if record.stack_info:
            record.stack_info = mask(record.stack_info)
        for key, value in record.__dict__.items():
            if key not in _STANDARD and isinstance(value, str):
                record.__dict__[key] = mask(value)
        return True


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:  # extra={"request_id": ...} wins
            record.request_id = REQUEST_ID.get()
        return True


class TextFormatter(logging.Formatter):
    """`time LEVEL logger message`, then `request_id=...` for a request's records."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        request_id = getattr(record, "request_id", None)
        if request_id is None:
            return text
        line, newline, rest = text.partition("\n")  # after the message, before a traceback
        return f"{line} request_id={request_id}{newline}{rest}"


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (ISO 8601 UTC), level, logger, message, request_id in a request,
    exception (the traceback's text) when there is one, and the record's extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        created = datetime.fromtimestamp(record.created, UTC)
        entry: dict[str, Any] = {
            "time": created.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None)
        if request_id is not None:
            entry["request_id"] = request_id
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in entry:
                entry[key] = value
        return orjson.dumps(entry, default=str).decode()


_STATEMENT_LOGGERS = ("aiosqlite", "sqlalchemy.engine", "psycopg")


def configure_logging(level: str, log_format: LogFormat = "text", secrets: Iterable[str] = ()) -> None:
    """The process's one log handler, on stderr: every logger's records (uvicorn's, gRPC's,
    SQLAlchemy's) pass its filters, so none escapes the masking."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(_RequestIdFilter())
    handler.addFilter(MaskSecrets(SecretMasker(secrets)))
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # The database drivers log each statement with its parameters (aiosqlite's "executing ..." at
    # DEBUG, SQLAlchemy's engine at INFO): channel configs and tokens in clear, which no pattern
    # knows. Their warnings and errors still come through, whatever the level.
    for name in _STATEMENT_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))

"""OTLP/HTTP trace exports as the specification has them (opentelemetry.io/docs/specs/otlp): the
body in protobuf or JSON, maybe gzipped, read into an ExportTraceServiceRequest; the answers, an
ExportTraceServiceResponse (with partial_success when spans were not stored) or a google.rpc.Status,
in the request's own encoding. Pure: no I/O. The spans' meaning is spans.py's.

OTLP/JSON is proto3's JSON mapping with two differences this reads as the specification says:
trace and span ids are hex strings (not base64), and enums are integers (names pass too). Keys in
lowerCamelCase or the proto's snake_case, 64-bit integers as numbers or strings, unknown fields
ignored.
"""

from __future__ import annotations

import base64
import zlib
from enum import StrEnum
from typing import Any

import orjson
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from control_plane.core.errors import DomainError, InvalidInput

# google.rpc.Code of each status an export is answered with (the specification does not use the
# code, clients may log it).
# INVALID_ARGUMENT, NOT_FOUND, RESOURCE_EXHAUSTED, UNAVAILABLE
_RPC_CODES = {400: 3, 404: 5, 413: 8, 429: 8, 503: 14}
_MESSAGE_MAX = 2000  # characters of a parse error quoted back
_ID_KEYS = ("traceId", "trace_id", "spanId", "span_id", "parentSpanId", "parent_span_id")


class Encoding(StrEnum):
    PROTOBUF = "application/x-protobuf"
    JSON = "application/json"


class UnsupportedEncoding(DomainError):
    """415: a Content-Type or Content-Encoding OTLP/HTTP does not have."""


class InflatedTooLarge(DomainError):
    """413: the gzipped body inflates past the body limit."""


def encoding_of(content_type: str | None) -> Encoding:
    media_type = (content_type or "").partition(";")[0].strip().lower()
    try:
        return Encoding(media_type)
    except ValueError:
        shown = repr(media_type[:100]) if media_type else "none"
        raise UnsupportedEncoding(
            f"Content-Type: must be application/x-protobuf or application/json (got {shown})"
        ) from None


def inflate(body: bytes, content_encoding: str | None, limit: int) -> bytes:
    """The body as sent (no Content-Encoding, or identity) or gunzipped, never more than `limit`
    bytes: a small gzip bomb stops at the limit instead of filling memory."""
    coding = (content_encoding or "").strip().lower()
    if coding in ("", "identity"):
        return body
    if coding != "gzip":
        raise UnsupportedEncoding(f"Content-Encoding: must be gzip or none (got {coding[:40]!r})")
    inflated = bytearray()
    rest = body
    while rest:  # gzip members one after another make one body (RFC 1952)
        member = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        try:
            inflated += member.decompress(rest, limit + 1 - len(inflated))
        except zlib.error as exc:
            raise InvalidInput(f"Request body: not valid gzip ({exc})") from None
        if len(inflated) > limit or member.unconsumed_tail:
            raise InflatedTooLarge(f"Request body too large once inflated (limit {limit} bytes)")
        if not member.eof:
            raise InvalidInput("Request body: the gzip stream ends early")
        rest = member.unused_data
    return bytes(inflated)


def decode(body: bytes, encoding: Encoding) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    if encoding is Encoding.PROTOBUF:
        try:
            request.ParseFromString(body)
        except DecodeError as exc:
            raise InvalidInput(f"Request body: not a protobuf ExportTraceServiceRequest ({exc})") from None
        return request
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"Request body is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise InvalidInput("Request body: must be a JSON object (an ExportTraceServiceRequest)")
    # protobuf's ParseDict reads a string where a message goes as an empty message.
    resource_spans = document.get("resourceSpans", document.get("resource_spans"))
    if isinstance(resource_spans, list) and not all(isinstance(spans, dict) for spans in resource_spans):
        raise InvalidInput(
            "Request body: not an OTLP/JSON ExportTraceServiceRequest (resourceSpans: each must be an object)"
        )
    _ids_to_base64(document)
    try:
        json_format.ParseDict(document, request, ignore_unknown_fields=True)
    except (json_format.ParseError, RecursionError) as exc:
        raise InvalidInput(
            f"Request body: not an OTLP/JSON ExportTraceServiceRequest ({exc})"[:_MESSAGE_MAX]
        ) from None
    return request


def export_response(encoding: Encoding, rejected_spans: int = 0, error_message: str = "") -> bytes:
    """Success, full (partial_success left unset, as the specification asks) or partial."""
    response = ExportTraceServiceResponse()
    if rejected_spans or error_message:
        response.partial_success.rejected_spans = rejected_spans
        response.partial_success.error_message = error_message
    if encoding is Encoding.PROTOBUF:
        return response.SerializeToString()
    return orjson.dumps(json_format.MessageToDict(response))


def error_body(encoding: Encoding, status: int, message: str) -> bytes:
    """A failure: a protobuf google.rpc.Status for a protobuf request (as the specification
    requires), the API's `{"error": ...}` for a JSON one."""
    if encoding is Encoding.JSON:
        return orjson.dumps({"error": message})
    return _rpc_status(_RPC_CODES.get(status, 2), message)  # 2: UNKNOWN


def _rpc_status(code: int, message: str) -> bytes:
    """google.rpc.Status {code = 1 (int32), message = 2 (string)}, encoded by hand: the message is
    two fields, not worth a dependency on googleapis-common-protos."""
    text = message.encode()
    return b"\x08" + _varint(code) + b"\x12" + _varint(len(text)) + text


def _varint(number: int) -> bytes:
    out = bytearray()
    while True:
        low, number = number & 0x7F, number >> 7
        if number:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _ids_to_base64(document: dict[str, Any]) -> None:
    """OTLP/JSON's hex ids as the base64 proto3 JSON reads for bytes, in place."""
    for r, resource_spans in enumerate(_list(document, "resourceSpans", "resource_spans")):
        for s, scope_spans in enumerate(_list(resource_spans, "scopeSpans", "scope_spans")):
            for n, span in enumerate(_list(scope_spans, "spans")):
                where = f"resourceSpans[{r}].scopeSpans[{s}].spans[{n}]"
                _convert_ids(span, where)
                for k, link in enumerate(_list(span, "links")):
                    _convert_ids(link, f"{where}.links[{k}]")


def _list(node: Any, *keys: str) -> list[Any]:
    if not isinstance(node, dict):
        return []
    for key in keys:
        value = node.get(key)
        if isinstance(value, list):
            return value
    return []


def _convert_ids(node: Any, where: str) -> None:
    if not isinstance(node, dict):
        return
    for key in _ID_KEYS:
        value = node.get(key)
        if isinstance(value, str):
            try:
                node[key] = base64.b64encode(bytes.fromhex(value)).decode()
            except ValueError:
                raise InvalidInput(f"{where}.{key}: must be hex digits (got {value[:40]!r})") from None

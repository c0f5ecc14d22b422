"""What an HTTP response must satisfy: expectedStatus, expectedKeyword and the config assertions.

Each rule that fails raises CheckError naming the rule with its expected and actual values.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jsonpath_ng import JSONPath
from jsonpath_ng.ext import parse as parse_jsonpath

from agent.checks.base import CheckError, CheckSpec, ErrorKind

_NO_JSON = object()


@dataclass(slots=True)
class ObservedResponse:
    status: int
    headers: Mapping[str, str]  # case-insensitive (aiohttp's CIMultiDictProxy)
    body: bytes
    text: str
    response_time_ms: float


def check_response(check: CheckSpec, response: ObservedResponse) -> None:
    assertions: list[dict[str, Any]] = check.config.get("assertions") or []
    _check_status(check, response, assertions)
    if check.expected_keyword and check.expected_keyword not in response.text:
        raise CheckError(
            ErrorKind.KEYWORD, f"expected keyword {check.expected_keyword!r} not found in the body"
        )
    parsed_json: Any = None
    for number, assertion in enumerate(assertions, start=1):
        kind = assertion.get("type")
        if kind == "json_path" and parsed_json is None:
            parsed_json = _parse_json(response.text)
        failure = _evaluate(assertion, response, parsed_json)
        if failure is not None:
            raise CheckError(
                ErrorKind.ASSERTION, f"assertion {number} ({_describe(assertion)}) failed: {failure}"
            )


def _check_status(check: CheckSpec, response: ObservedResponse, assertions: list[dict[str, Any]]) -> None:
    if check.expected_status is not None:
        if response.status != check.expected_status:
            raise CheckError(
                ErrorKind.HTTP_STATUS, f"expected status {check.expected_status}, got {response.status}"
            )
        return
    # With status_code assertions the user has said which statuses are fine; the 2xx default would
    # make e.g. `status_code equals 404` impossible to satisfy.
    if any(a.get("type") == "status_code" for a in assertions):
        return
    if not 200 <= response.status < 300:
        raise CheckError(ErrorKind.HTTP_STATUS, f"expected a 2xx status, got {response.status}")


def _evaluate(assertion: dict[str, Any], response: ObservedResponse, parsed_json: Any) -> str | None:
    """Returns why the assertion failed, or None when it holds."""
    kind, operator, expected = assertion["type"], assertion["operator"], str(assertion["value"])
    if kind == "status_code":
        return _compare_number(operator, float(expected), response.status, expected)
    if kind == "response_time":
        return _compare_number(
            operator, float(expected), response.response_time_ms, f"{expected} ms", unit=" ms"
        )
    if kind == "header":
        actual = response.headers.get(assertion["name"])
        found = [] if actual is None else [actual]
        return _compare_text(operator, expected, found, raw=found)
    if kind == "json_path":
        if parsed_json is _NO_JSON:
            return f"expected {operator} {expected!r}, but the body is not JSON"
        matches = [match.value for match in _compiled(assertion["path"]).find(parsed_json)]
        if not matches:
            return f"expected {operator} {expected!r}, but the path matched nothing"
        return _compare_text(operator, expected, [_json_text(m) for m in matches], raw=matches)
    return f"unknown assertion type {kind!r}"


def _compare_number(operator: str, expected: float, actual: float, shown: str, unit: str = "") -> str | None:
    holds = {
        "equals": actual == expected,
        "not_equals": actual != expected,
        "greater_than": actual > expected,
        "less_than": actual < expected,
    }.get(operator)
    if holds is None:
        return f"unknown operator {operator!r}"
    return None if holds else f"expected {operator} {shown}, got {actual:g}{unit}"


def _compare_text(operator: str, expected: str, actuals: list[str], raw: list[Any]) -> str | None:
    if operator == "equals":
        holds = expected in actuals
    elif operator == "not_equals":
        holds = expected not in actuals
    elif operator == "contains":
        # A matched list contains the value as an element; anything else as a substring.
        holds = any(
            (isinstance(value, list) and expected in [_json_text(v) for v in value]) or expected in text
            for value, text in zip(raw, actuals, strict=True)
        )
    else:
        return f"unknown operator {operator!r}"
    if holds:
        return None
    shown = "nothing" if not actuals else (repr(actuals[0]) if len(actuals) == 1 else repr(actuals))
    return f"expected {operator} {expected!r}, got {shown}"


def _describe(assertion: dict[str, Any]) -> str:
    subject = {"json_path": assertion.get("path"), "header": assertion.get("name")}.get(assertion["type"])
    return (
        f"{assertion['type']} {subject} {assertion['operator']}"
        if subject
        else (f"{assertion['type']} {assertion['operator']}")
    )


def _json_text(value: Any) -> str:
    # The JSON value's string form: true, 42, ok (strings without quotes), objects as compact JSON.
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


def _parse_json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return _NO_JSON


@lru_cache(maxsize=4096)
def _compiled(path: str) -> JSONPath:
    # Parsing is far slower than matching; the same few paths repeat every interval.
    return parse_jsonpath(path)

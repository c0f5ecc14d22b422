"""The four assertion types with every operator, plus expectedStatus and expectedKeyword."""

from __future__ import annotations

import json
from typing import Any

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from agent.checks.assertions import ObservedResponse, check_response
from agent.checks.base import CheckError, CheckSpec, ErrorKind

BODY = {"data": {"status": "ok", "count": 42, "up": True, "tags": ["a", "b"], "ratio": 1.5}}


def response(status: int = 200, body: Any = BODY, time_ms: float = 120.0) -> ObservedResponse:
    text = json.dumps(body) if not isinstance(body, str) else body
    headers = CIMultiDictProxy(CIMultiDict({"Content-Type": "application/json; charset=utf-8"}))
    return ObservedResponse(
        status=status, headers=headers, body=text.encode(), text=text, response_time_ms=time_ms
    )


def check(*assertions: dict[str, str], **overrides: Any) -> CheckSpec:
    return CheckSpec(
        monitor_id="mon_a",
        type="HTTP",
        target="http://x",
        interval_s=60,
        timeout_s=5,
        config={"assertions": list(assertions)},
        **overrides,
    )


def failure(spec: CheckSpec, observed: ObservedResponse | None = None) -> CheckError | None:
    try:
        check_response(spec, observed or response())
    except CheckError as error:
        return error
    return None


@pytest.mark.parametrize(
    ("operator", "value", "holds"),
    [
        ("equals", "200", True),
        ("equals", "201", False),
        ("not_equals", "500", True),
        ("not_equals", "200", False),
        ("greater_than", "199", True),
        ("greater_than", "200", False),
        ("less_than", "300", True),
        ("less_than", "200", False),
    ],
)
def test_status_code(operator: str, value: str, holds: bool) -> None:
    error = failure(check({"type": "status_code", "operator": operator, "value": value}))
    assert (error is None) is holds
    if error:
        assert error.kind is ErrorKind.ASSERTION
        assert (
            error.message
            == f"assertion 1 (status_code {operator}) failed: expected {operator} {value}, got 200"
        )


@pytest.mark.parametrize(
    ("operator", "value", "holds"),
    [
        ("less_than", "500", True),
        ("less_than", "100", False),
        ("greater_than", "100", True),
        ("greater_than", "500", False),
    ],
)
def test_response_time(operator: str, value: str, holds: bool) -> None:
    error = failure(check({"type": "response_time", "operator": operator, "value": value}))
    assert (error is None) is holds
    if error:
        assert error.message.endswith(f"expected {operator} {value} ms, got 120 ms")


@pytest.mark.parametrize(
    ("path", "operator", "value", "holds"),
    [
        ("$.data.status", "equals", "ok", True),
        ("$.data.status", "equals", "down", False),
        ("$.data.count", "equals", "42", True),
        ("$.data.up", "equals", "true", True),
        ("$.data.ratio", "equals", "1.5", True),
        ("$.data.status", "not_equals", "down", True),
        ("$.data.status", "not_equals", "ok", False),
        ("$.data.status", "contains", "o", True),
        ("$.data.tags", "contains", "b", True),
        ("$.data.tags", "contains", "c", False),
        ("$.data.missing", "equals", "x", False),
        ("$.data.missing", "not_equals", "x", False),  # matching nothing always fails
    ],
)
def test_json_path(path: str, operator: str, value: str, holds: bool) -> None:
    error = failure(check({"type": "json_path", "path": path, "operator": operator, "value": value}))
    assert (error is None) is holds, error


def test_json_path_on_a_non_json_body() -> None:
    error = failure(
        check({"type": "json_path", "path": "$.a", "operator": "equals", "value": "1"}),
        response(body="<html>"),
    )
    assert error is not None and "not JSON" in error.message


@pytest.mark.parametrize(
    ("name", "operator", "value", "holds"),
    [
        ("content-type", "contains", "json", True),
        ("CONTENT-TYPE", "equals", "application/json; charset=utf-8", True),
        ("content-type", "equals", "json", False),
        ("content-type", "not_equals", "text/html", True),
        ("x-missing", "not_equals", "a", True),
        ("x-missing", "contains", "a", False),
    ],
)
def test_header(name: str, operator: str, value: str, holds: bool) -> None:
    error = failure(check({"type": "header", "name": name, "operator": operator, "value": value}))
    assert (error is None) is holds, error


def test_header_failure_message() -> None:
    error = failure(check({"type": "header", "name": "content-type", "operator": "contains", "value": "xml"}))
    assert error is not None
    assert error.message == (
        "assertion 1 (header content-type contains) failed: "
        "expected contains 'xml', got 'application/json; charset=utf-8'"
    )


def test_default_expected_status_is_any_2xx() -> None:
    assert failure(check(), response(status=204)) is None
    error = failure(check(), response(status=301))
    assert error is not None and error.kind is ErrorKind.HTTP_STATUS


def test_status_code_assertions_replace_the_2xx_default() -> None:
    assert (
        failure(check({"type": "status_code", "operator": "equals", "value": "404"}), response(404)) is None
    )


def test_expected_status_and_keyword() -> None:
    error = failure(check(expected_status=201))
    assert error is not None and error.message == "expected status 201, got 200"
    error = failure(check(expected_keyword="nope"))
    assert error is not None and error.kind is ErrorKind.KEYWORD

"""The API reference's examples, kept as data in tests/fixtures, for field-by-field shape checks."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

SPEC_PATH = Path(__file__).resolve().parent / "fixtures" / "api_reference_examples.json"
ISO_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


@cache
def _endpoints() -> list[dict[str, Any]]:
    return json.loads(SPEC_PATH.read_text())


def example(method: str, path: str, index: int = 0) -> Any:
    for endpoint in _endpoints():
        if endpoint["path"] == path and method.upper() in endpoint["methods"]:
            return endpoint["exampleResponses"][index]["json"]
    raise KeyError(f"{method} {path} is not in the reference")


def assert_shape(actual: Any, expected: Any, where: str = "$") -> None:
    """Same keys at every level, same JSON types where the example is not null.

    Timestamps that the example writes as ISO 8601 with milliseconds must be written that way too.
    """
    if expected is None:
        return
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{where}: expected an object, got {actual!r}"
        assert set(actual) == set(expected), (
            f"{where}: keys differ: missing {sorted(set(expected) - set(actual))}, "
            f"extra {sorted(set(actual) - set(expected))}"
        )
        for key, value in expected.items():
            assert_shape(actual[key], value, f"{where}.{key}")
        return
    if isinstance(expected, list):
        assert isinstance(actual, list), f"{where}: expected a list, got {actual!r}"
        if expected:
            for i, item in enumerate(actual):
                assert_shape(item, expected[0], f"{where}[{i}]")
        return
    if actual is None:
        return  # nullable in practice (e.g. lastUsed before first use)
    if isinstance(expected, bool):
        assert isinstance(actual, bool), f"{where}: expected a boolean, got {actual!r}"
    elif isinstance(expected, (int, float)):
        assert isinstance(actual, (int, float)) and not isinstance(actual, bool), (
            f"{where}: expected a number"
        )
    elif isinstance(expected, str):
        assert isinstance(actual, str), f"{where}: expected a string, got {actual!r}"
        if ISO_MS.match(expected):
            assert ISO_MS.match(actual), f"{where}: {actual!r} is not ISO 8601 with milliseconds and Z"

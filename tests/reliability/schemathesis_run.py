"""schemathesis's command with Traxo's own checks, run as `python -m tests.reliability.schemathesis_run
--config-file F run URL` by test_openapi_fuzz.py and bench/fuzz.py.

Two checks schemathesis has no equivalent of: no answer is ever FastAPI's 422 (errors.py turns
validation errors into 400s); and, for an identity of another organization (TRAXO_FUZZ_FOREIGN, a
JSON object of the first organization's `ids` and `privateSlugs`), an operation that needs a key
answers no success for a path that names one of those ids, nor shows one the request did not
send, and no operation answers a success for a path with a private page's slug.
"""

from __future__ import annotations

import ast
import json
import os
import sys
import threading
from typing import Any

import schemathesis
from schemathesis.cli import schemathesis as schemathesis_command

_FOREIGN = json.loads(os.environ.get("TRAXO_FUZZ_FOREIGN", "{}"))
FOREIGN_IDS: list[str] = _FOREIGN.get("ids", [])
PRIVATE_SLUGS: list[str] = _FOREIGN.get("privateSlugs", [])


@schemathesis.check
def never_422(ctx: Any, response: Any, case: Any) -> bool | None:
    """FastAPI's default answer to invalid input; ours is a 400 naming the field."""
    if response.status_code == 422:
        raise AssertionError(f"422 for {case.method} {case.formatted_path}: {response.text[:300]}")
    return None


def _needs_key(case: Any) -> bool:
    """Whether the operation takes only the bearer scheme (public ones show what is public by design:
    a public page's incidents, a badge's monitor)."""
    security = case.operation.definition.raw.get("security")
    return bool(security == [{"bearerAuth": []}])


def _sent(response: Any) -> str:
    body = response.request.body or b""
    return response.request.url + (body.decode(errors="replace") if isinstance(body, bytes) else str(body))


@schemathesis.check
def foreign_resources_stay_hidden(ctx: Any, response: Any, case: Any) -> bool | None:
    """Another organization's resource is a 404, and its ids show in no answer but an echo."""
    path = case.formatted_path
    success = 200 <= response.status_code < 300
    private = [slug for slug in PRIVATE_SLUGS if f"/{slug}" in path]
    if private and success:
        raise AssertionError(f"{case.method} {path} answered {response.status_code} for a private page")
    if not FOREIGN_IDS or not _needs_key(case):
        return None
    named = [value for value in FOREIGN_IDS if value in path]
    if named and success:
        raise AssertionError(
            f"{case.method} {path} answered {response.status_code} for another organization's {named[:3]}"
        )
    sent, text = _sent(response), response.text or ""
    shown = [value for value in FOREIGN_IDS if value in text and value not in sent]
    if shown:
        raise AssertionError(
            f"{case.method} {path} answered {response.status_code} naming another organization's {shown[:3]}"
        )
    return None


def _serialize_ast_parse() -> None:
    """CPython 3.11 keeps ast.parse's recursion counter in state that threads share
    (python/cpython#106905), and hypothesis (describing filters in the worker thread) and werkzeug
    (routing in the main thread) parse at the same time now and then, failing with "SystemError:
    AST constructor recursion depth mismatch"."""
    parse, lock = ast.parse, threading.RLock()

    def serialized_parse(*args: Any, **kwargs: Any) -> Any:
        with lock:
            return parse(*args, **kwargs)

    ast.parse = serialized_parse  # type: ignore[assignment]


if __name__ == "__main__":
    _serialize_ast_parse()
    sys.exit(schemathesis_command())

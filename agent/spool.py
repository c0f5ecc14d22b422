"""Unacknowledged results in a local SQLite file: the queue the sender reads from, surviving restarts.

Every result is written here before it is sent and deleted when the control plane acknowledges it.
The file is bounded by bytes and by age; results pushed out by the bounds are counted as dropped.
All SQLite work runs on one private thread, so the event loop never blocks on the disk.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from agent.clock import Clock

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at REAL NOT NULL,
    payload BLOB NOT NULL
)
"""


@dataclass(frozen=True, slots=True)
class SpooledResult:
    seq: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class SpoolStats:
    count: int
    size_bytes: int
    oldest_created_at: float | None


@dataclass(frozen=True, slots=True)
class Dropped:
    by_size: int = 0
    by_age: int = 0


class Spool:
    def __init__(self, path: Path, max_bytes: int, max_age_s: float, clock: Clock) -> None:
        self._path = path
        self._max_bytes = max_bytes
        self._max_age_s = max_age_s
        self._clock = clock
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="traxo-spool")
        self._db: sqlite3.Connection | None = None
        self._size_bytes = 0
        self._count = 0

    async def open(self) -> None:
        await self._call(self._open_sync)

    async def close(self) -> None:
        await self._call(self._close_sync)
        self._executor.shutdown(wait=True)

    async def add(self, payloads: Sequence[bytes]) -> Dropped:
        """Appends results, then enforces the bounds; returns what the bounds pushed out."""
        return await self._call(self._add_sync, list(payloads), self._clock.wall())

    async def read_after(self, seq: int, limit: int) -> list[SpooledResult]:
        """Oldest results first, after `seq` (the sender's cursor)."""
        return await self._call(self._read_sync, seq, limit)

    async def delete(self, seqs: Sequence[int]) -> None:
        await self._call(self._delete_sync, list(seqs))

    async def stats(self) -> SpoolStats:
        return await self._call(self._stats_sync)

    async def _call(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    # --- on the spool thread -----------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        assert self._db is not None, "Spool.open() was not awaited"
        return self._db

    def _open_sync(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode survives a process crash; only an OS crash may lose the last commits.
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute(_SCHEMA)
        self._db = db
        self._recount_sync()

    def _close_sync(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _add_sync(self, payloads: list[bytes], now: float) -> Dropped:
        db = self._conn()
        with db:
            db.execute("BEGIN")
            db.executemany(
                "INSERT INTO results (created_at, payload) VALUES (?, ?)",
                [(now, payload) for payload in payloads],
            )
        self._size_bytes += sum(len(p) for p in payloads)
        self._count += len(payloads)
        return self._enforce_bounds_sync(now)

    def _enforce_bounds_sync(self, now: float) -> Dropped:
        db = self._conn()
        by_age, by_size = 0, 0
        oldest = db.execute("SELECT created_at FROM results ORDER BY seq LIMIT 1").fetchone()
        if oldest is not None and oldest[0] < now - self._max_age_s:  # the cheap test first: no scan
            by_age = db.execute("DELETE FROM results WHERE created_at < ?", (now - self._max_age_s,)).rowcount
            self._recount_sync()
        while self._size_bytes > self._max_bytes:
            # Oldest first, in chunks, until under the bound again.
            rows = db.execute("SELECT seq, LENGTH(payload) FROM results ORDER BY seq LIMIT 500").fetchall()
            if not rows:
                break
            freed, cut = 0, 0
            for seq, length in rows:
                freed += length
                cut = seq
                by_size += 1
                if self._size_bytes - freed <= self._max_bytes:
                    break
            db.execute("DELETE FROM results WHERE seq <= ?", (cut,))
            self._size_bytes -= freed
            self._count -= len([row for row in rows if row[0] <= cut])
        return Dropped(by_size=by_size, by_age=by_age)

    def _recount_sync(self) -> None:
        row = (
            self._conn().execute("SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM results").fetchone()
        )
        self._count, self._size_bytes = row

    def _read_sync(self, seq: int, limit: int) -> list[SpooledResult]:
        rows = (
            self._conn()
            .execute("SELECT seq, payload FROM results WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit))
            .fetchall()
        )
        return [SpooledResult(seq=row[0], payload=row[1]) for row in rows]

    def _delete_sync(self, seqs: list[int]) -> None:
        db = self._conn()
        with db:
            db.execute("BEGIN")
            # Sum what is really deleted: the bounds may have removed some of these already.
            freed, deleted = 0, 0
            for chunk in _chunks(seqs, 500):
                marks = ",".join("?" * len(chunk))
                freed += db.execute(
                    f"SELECT COALESCE(SUM(LENGTH(payload)), 0) FROM results WHERE seq IN ({marks})", chunk
                ).fetchone()[0]
                deleted += db.execute(f"DELETE FROM results WHERE seq IN ({marks})", chunk).rowcount
        self._size_bytes -= freed
        self._count -= deleted

    def _stats_sync(self) -> SpoolStats:
        oldest = self._conn().execute("SELECT created_at FROM results ORDER BY seq LIMIT 1").fetchone()
        return SpoolStats(
            count=self._count, size_bytes=self._size_bytes, oldest_created_at=oldest[0] if oldest else None
        )


def _chunks(values: list[int], size: int) -> list[list[int]]:
    return [values[i : i + size] for i in range(0, len(values), size)]

"""Unacknowledged results in a local SQLite file: the queue the sender reads from, surviving restarts.

Every result is written here before it is sent and deleted when the control plane acknowledges it.
The file is bounded by bytes and by age; results pushed out by the bounds are counted as dropped.
A full disk is a third bound, learned when SQLite says so: the oldest results make room for new ones.
All SQLite work runs on one private thread, so the event loop never blocks on the disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from agent.clock import Clock

T = TypeVar("T")

log = logging.getLogger(__name__)

# Space held back beside the spool for the moment the disk is full: SQLite needs room to write even a
# DELETE (WAL frames, the checkpoint that moves them into the file), so with none left it could only
# refuse everything. Released on SQLITE_FULL, rewritten once the oldest results have made room. It
# must hold a batch's WAL frames (500 results are ~40 pages), hence the WAL's bound below.
DEFAULT_RESERVE_BYTES = 1024 * 1024
# With the reserve released, the first attempt only moves the WAL into the file; each further one
# drops more of the oldest (twice the batch's bytes, then four, then eight times).
_DISK_FULL_ATTEMPTS = 4
_AUTO_VACUUM_INCREMENTAL = 2

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
    disk_full: bool = False  # the disk, not max_bytes, bounds the spool now


@dataclass(frozen=True, slots=True)
class Dropped:
    by_size: int = 0
    by_age: int = 0
    # The disk was full: the oldest results pushed out to make room, and (unstored) new ones that
    # found no room even then.
    by_disk: int = 0
    unstored: int = 0


class Spool:
    def __init__(
        self,
        path: Path,
        max_bytes: int,
        max_age_s: float,
        clock: Clock,
        *,
        reserve_bytes: int = DEFAULT_RESERVE_BYTES,
    ) -> None:
        self._path = path
        self._reserve_path = path.with_name(path.name + ".reserve")
        self._max_bytes = max_bytes
        self._max_age_s = max_age_s
        self._clock = clock
        self._reserve_bytes = reserve_bytes
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="traxo-spool")
        self._db: sqlite3.Connection | None = None
        self._size_bytes = 0
        self._count = 0
        # What the disk held when it was last found full: the bound until the spool empties again
        # (results acknowledged free pages that new ones reuse, so the file need not grow).
        self._disk_bytes: int | None = None
        self._dropped_for_disk = 0  # by the add in progress, to make room on a full disk
        self._page_size = 4096  # the file's, once open

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
        # INCREMENTAL: on a full disk the file can give the pages of dropped results back (see
        # _restore_reserve_sync). It takes effect for a new file, or an old one rebuilt while empty.
        if db.execute("PRAGMA auto_vacuum").fetchone()[0] != _AUTO_VACUUM_INCREMENTAL:
            db.execute(f"PRAGMA auto_vacuum={_AUTO_VACUUM_INCREMENTAL}")
            if not db.execute("SELECT name FROM sqlite_master WHERE name = 'results'").fetchone() or not (
                db.execute("SELECT 1 FROM results LIMIT 1").fetchone()
            ):
                db.execute("VACUUM")
        db.execute(_SCHEMA)
        # The WAL's pages not yet in the file are what a checkpoint must find room for: keep them
        # within half the reserve (SQLite's default lets the WAL reach 1,000 pages first).
        self._page_size = db.execute("PRAGMA page_size").fetchone()[0]
        db.execute(f"PRAGMA wal_autocheckpoint={max(16, self._reserve_bytes // self._page_size // 2)}")
        self._db = db
        self._recount_sync()
        self._make_reserve_sync()

    def _close_sync(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _add_sync(self, payloads: list[bytes], now: float) -> Dropped:
        self._dropped_for_disk = 0
        stored = True
        try:
            self._insert_sync(payloads, now)
        except sqlite3.OperationalError as exc:
            if not _disk_full(exc):
                raise
            stored = self._add_to_full_disk_sync(payloads, now)
        bounded = self._enforce_bounds_sync(now)
        return Dropped(
            by_size=bounded.by_size,
            by_age=bounded.by_age,
            by_disk=self._dropped_for_disk,
            unstored=0 if stored else len(payloads),
        )

    def _insert_sync(self, payloads: list[bytes], now: float) -> None:
        db = self._conn()
        with db:
            db.execute("BEGIN")
            db.executemany(
                "INSERT INTO results (created_at, payload) VALUES (?, ?)",
                [(now, payload) for payload in payloads],
            )
        self._size_bytes += sum(len(p) for p in payloads)
        self._count += len(payloads)

    def _add_to_full_disk_sync(self, payloads: list[bytes], now: float) -> bool:
        """SQLITE_FULL on insert. Most often the WAL has filled the disk: moved into the file, it gives
        its space back. Else, with the reserve released, the oldest make room, more each time, until
        the batch fits; a batch that fits nowhere is not stored (False), so the agent keeps running."""
        try:
            self._checkpoint_sync()
            self._insert_sync(payloads, now)
            return True
        except sqlite3.OperationalError as exc:
            if not _disk_full(exc):
                raise
        self._release_reserve_sync()
        needed = max(1, sum(len(p) for p in payloads))
        held = self._size_bytes  # what the disk held when it refused more
        try:
            for attempt in range(_DISK_FULL_ATTEMPTS):
                try:
                    self._checkpoint_sync()
                    if attempt:
                        self._dropped_for_disk += self._delete_oldest_sync(
                            self._size_bytes - (needed << attempt)
                        )
                        self._checkpoint_sync()
                    self._insert_sync(payloads, now)
                except sqlite3.OperationalError as exc:
                    if not _disk_full(exc):
                        raise
                    continue
                return True
            return False
        finally:
            if self._dropped_for_disk:
                # The results themselves fill the disk (not just the WAL, which a checkpoint gives
                # back): from now on the oldest make room, and the file stops growing.
                self._limit_to_disk(held)
            self._restore_reserve_sync()

    def _enforce_bounds_sync(self, now: float) -> Dropped:
        db = self._conn()
        by_age = 0
        oldest = db.execute("SELECT created_at FROM results ORDER BY seq LIMIT 1").fetchone()
        if oldest is not None and oldest[0] < now - self._max_age_s:  # the cheap test first: no scan
            by_age = self._writing_sync(
                lambda: (
                    db.execute("DELETE FROM results WHERE created_at < ?", (now - self._max_age_s,)).rowcount
                )
            )
            self._recount_sync()
        if self._disk_bytes is not None and self._disk_has_room_again_sync():
            self._disk_bytes = None  # space was freed: back to the byte bound (a full disk re-limits)
        if self._disk_bytes is not None and self._disk_bytes < self._max_bytes:
            dropped = self._make_room_sync(self._disk_bytes)  # first: it may count drops of its own
            self._dropped_for_disk += dropped
            return Dropped(by_age=by_age)
        return Dropped(by_size=self._make_room_sync(self._max_bytes), by_age=by_age)

    def _make_room_sync(self, limit_bytes: int) -> int:
        """Drops the oldest until the spool holds at most `limit_bytes`; returns how many. Deleting needs
        room on the disk too: when it is refused, the reserve and the WAL's space make that room."""
        dropped = self._delete_oldest_sync(limit_bytes)
        if self._size_bytes > limit_bytes:
            self._release_reserve_sync()
            self._checkpoint_sync()
            dropped += self._delete_oldest_sync(limit_bytes)
            self._restore_reserve_sync()
        return dropped

    def _delete_oldest_sync(self, target_bytes: int) -> int:
        """Deletes the oldest results until at most `target_bytes` remain; returns how many.

        A transaction per chunk of 500: a full disk that refuses one keeps what was deleted before it
        (counted), and the caller sees the spool still above the target."""
        db = self._conn()
        dropped = 0
        while self._size_bytes > target_bytes:
            rows = db.execute("SELECT seq, LENGTH(payload) FROM results ORDER BY seq LIMIT 500").fetchall()
            if not rows:
                break
            freed, cut, cut_count = 0, 0, 0
            for seq, length in rows:
                freed += length
                cut, cut_count = seq, cut_count + 1
                if self._size_bytes - freed <= target_bytes:
                    break
            try:
                db.execute("DELETE FROM results WHERE seq <= ?", (cut,))
            except sqlite3.OperationalError as exc:
                if not _disk_full(exc):
                    raise
                break
            self._size_bytes -= freed
            self._count -= cut_count
            dropped += cut_count
        return dropped

    def _restore_reserve_sync(self) -> None:
        """Writes the reserve again; where the results have grown into its room, the oldest give it
        back (the file shrinks by their pages, counted as dropped for the disk)."""
        self._checkpoint_sync()  # first: the WAL's frames are room that needs no results dropped
        if self._make_reserve_sync():
            return
        shortfall = self._reserve_bytes - self._reserve_size()
        self._release_reserve_sync()
        dropped = self._delete_oldest_sync(self._size_bytes - shortfall)
        pages = -(-shortfall // self._page_size) + 1
        try:
            # Only the shortfall's pages: the other free pages are where the next results go without
            # the file growing. (executescript steps the pragma to its end; execute() frees one page.)
            self._conn().executescript(f"PRAGMA incremental_vacuum({pages});")
        except sqlite3.OperationalError as exc:
            if not _disk_full(exc):
                raise
        self._checkpoint_sync()
        self._make_reserve_sync()
        if dropped:
            self._dropped_for_disk += dropped
            self._limit_to_disk(self._size_bytes)

    def _disk_has_room_again_sync(self) -> bool:
        """The reserve whole and the file system free of more than twice it: someone made room (a
        ballast removed, the disk grown) since the spool was limited to what the disk held, so a
        long cut-off need not keep dropping results the disk now takes."""
        if self._reserve_size() < self._reserve_bytes:
            self._make_reserve_sync()
            if self._reserve_size() < self._reserve_bytes:
                return False
        try:
            stat = os.statvfs(self._path.parent)
        except OSError:
            return False
        return stat.f_bavail * stat.f_frsize > 2 * self._reserve_bytes

    def _limit_to_disk(self, size_bytes: int) -> None:
        self._disk_bytes = size_bytes if self._disk_bytes is None else min(self._disk_bytes, size_bytes)

    def _writing_sync(self, write: Any, *args: Any) -> Any:
        """A write that a full disk refuses is tried once more with the reserve released and the WAL
        moved into the file (deleting rows needs room too)."""
        try:
            return write(*args)
        except sqlite3.OperationalError as exc:
            if not _disk_full(exc):
                raise
        self._release_reserve_sync()
        try:
            self._checkpoint_sync()
            return write(*args)
        finally:
            self._make_reserve_sync()

    def _checkpoint_sync(self) -> None:
        """Moves the WAL into the file and truncates it, giving its space back. On a full disk this
        may fail (the file cannot grow): what follows is tried anyway, and fails on its own if it must."""
        try:
            self._conn().execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        except sqlite3.OperationalError as exc:
            if not _disk_full(exc):
                raise

    def _release_reserve_sync(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._reserve_path.unlink()

    def _reserve_size(self) -> int:
        try:
            return self._reserve_path.stat().st_size
        except FileNotFoundError:
            return 0

    def _make_reserve_sync(self) -> bool:
        """As much of the reserve as the disk has room for (written, so it is allocated); True if all."""
        have = self._reserve_size()
        try:
            with self._reserve_path.open("ab", buffering=0) as reserve:
                while have < self._reserve_bytes:
                    have += reserve.write(bytes(min(65536, self._reserve_bytes - have))) or 0
        except OSError as exc:  # the disk is full: the reserve is rebuilt once there is room again
            log.debug("spool reserve %s left short: %s", self._reserve_path, exc)
            return False
        return True

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
        # A transaction per chunk: on a full disk each needs only a chunk's worth of room, and one
        # that needs more than the reserve gives is deleted in smaller ones.
        for chunk in _chunks(seqs, 500):
            try:
                self._writing_sync(self._delete_chunk_sync, chunk)
            except sqlite3.OperationalError as exc:
                if not _disk_full(exc):
                    raise
                for piece in _chunks(chunk, 20):
                    self._writing_sync(self._delete_chunk_sync, piece)
        if not self._count:  # emptied: whatever the disk holds is free again for the next results
            self._disk_bytes = None

    def _delete_chunk_sync(self, seqs: list[int]) -> None:
        db = self._conn()
        marks = ",".join("?" * len(seqs))
        with db:
            db.execute("BEGIN")
            # Sum what is really deleted: the bounds may have removed some of these already.
            freed = db.execute(
                f"SELECT COALESCE(SUM(LENGTH(payload)), 0) FROM results WHERE seq IN ({marks})", seqs
            ).fetchone()[0]
            deleted = db.execute(f"DELETE FROM results WHERE seq IN ({marks})", seqs).rowcount
        self._size_bytes -= freed
        self._count -= deleted

    def _stats_sync(self) -> SpoolStats:
        oldest = self._conn().execute("SELECT created_at FROM results ORDER BY seq LIMIT 1").fetchone()
        return SpoolStats(
            count=self._count,
            size_bytes=self._size_bytes,
            oldest_created_at=oldest[0] if oldest else None,
            disk_full=self._disk_bytes is not None,
        )


def _disk_full(exc: sqlite3.OperationalError) -> bool:
    return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL


def _chunks(values: list[int], size: int) -> list[list[int]]:
    return [values[i : i + size] for i in range(0, len(values), size)]

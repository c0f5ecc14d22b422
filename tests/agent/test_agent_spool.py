"""The SQLite spool: survives reopening, bounded by size and age, counts what it drops."""

from __future__ import annotations

from pathlib import Path

from agent.spool import Spool


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return self.now


async def test_it_keeps_results_across_reopen(tmp_path: Path) -> None:
    clock = Clock()
    spool = Spool(tmp_path / "s.sqlite3", max_bytes=10_000, max_age_s=3600, clock=clock)
    await spool.open()
    await spool.add([b"one", b"two", b"three"])
    rows = await spool.read_after(0, 10)
    await spool.delete([rows[0].seq])
    await spool.close()

    reopened = Spool(tmp_path / "s.sqlite3", max_bytes=10_000, max_age_s=3600, clock=clock)
    await reopened.open()
    assert [r.payload for r in await reopened.read_after(0, 10)] == [b"two", b"three"]
    stats = await reopened.stats()
    assert (stats.count, stats.size_bytes, stats.oldest_created_at) == (2, 8, 1_000.0)
    assert [r.payload for r in await reopened.read_after(rows[1].seq, 10)] == [b"three"]
    await reopened.close()


async def test_size_bound_drops_the_oldest(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite3", max_bytes=25, max_age_s=3600, clock=Clock())
    await spool.open()
    dropped = await spool.add([b"x" * 10 for _ in range(4)])
    assert dropped.by_size == 2
    stats = await spool.stats()
    assert (stats.count, stats.size_bytes) == (2, 20)
    await spool.close()


async def test_age_bound_drops_old_results(tmp_path: Path) -> None:
    clock = Clock()
    spool = Spool(tmp_path / "s.sqlite3", max_bytes=10_000, max_age_s=60, clock=clock)
    await spool.open()
    await spool.add([b"old", b"old"])
    clock.now += 61
    dropped = await spool.add([b"new"])
    assert dropped.by_age == 2
    assert [r.payload for r in await spool.read_after(0, 10)] == [b"new"]
    assert (await spool.stats()).count == 1
    await spool.close()


async def test_deleting_already_dropped_rows_keeps_counts_right(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite3", max_bytes=10, max_age_s=3600, clock=Clock())
    await spool.open()
    await spool.add([b"a" * 10])
    first = await spool.read_after(0, 1)
    await spool.add([b"b" * 10])  # pushes "a" out
    await spool.delete([first[0].seq])
    stats = await spool.stats()
    assert (stats.count, stats.size_bytes) == (1, 10)
    await spool.close()

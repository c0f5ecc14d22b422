"""The workers' runner: a job that keeps failing the same way logs its traceback once, then a line
a round (a database without its schema must not fill logs, or a pipe, with the same traceback)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from control_plane.workers.runner import PeriodicJob, WorkerRunner


async def test_a_repeated_failure_logs_its_traceback_once(database, caplog: pytest.LogCaptureFixture):
    rounds = 0
    failed_again = asyncio.Event()

    async def failing() -> None:
        nonlocal rounds
        rounds += 1
        if rounds >= 5:  # round 4 has been logged (its failure handled before this round began)
            failed_again.set()
        if rounds == 3:
            raise ValueError("another failure")
        raise RuntimeError("no such table: monitors")

    runner = WorkerRunner(database, [PeriodicJob("failing", 0.01, failing)])
    with caplog.at_level(logging.WARNING, logger="control_plane.workers.runner"):
        await runner.start()
        await asyncio.wait_for(failed_again.wait(), 10)
        await runner.stop()
    records = [r for r in caplog.records if "job failing failed" in r.getMessage()]
    with_traceback = [r for r in records if r.exc_info]
    # Round 1 (new), round 2 (the same: a line), round 3 (a new error), round 4 (new again).
    assert [r.exc_info[1].args[0] for r in with_traceback[:3]] == [  # type: ignore[index]
        "no such table: monitors",
        "another failure",
        "no such table: monitors",
    ]
    assert "failed again (RuntimeError: no such table: monitors" in records[1].getMessage()
    assert records[1].exc_info is None

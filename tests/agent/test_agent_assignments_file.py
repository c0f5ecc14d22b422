"""The assignments file on a disk that refuses writes: the agent keeps what it holds and says so once."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from agent.assignments import AssignmentStore
from traxo_protocol.traxo.agent.v1 import agent_pb2 as pb


class _Listener:
    def replace_all(self, assignments: dict) -> None:
        self.assignments = assignments

    def upsert(self, assignment: object) -> None: ...

    def remove(self, monitor_id: str) -> None: ...


async def test_a_write_that_fails_is_retried_and_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A directory where the file goes: every write fails with an OSError, as ENOSPC does on a full disk.
    path = tmp_path / "assignments.pb"
    path.with_suffix(".pb.tmp").mkdir()
    store = AssignmentStore(path, _Listener(), persist_delay_s=0)
    store.apply(pb.AssignmentUpdate(snapshot=pb.Snapshot(version=7)))
    with caplog.at_level(logging.INFO, logger="agent.assignments"):
        await store.persist()
        await store.persist()
        assert store._dirty.is_set()  # written again at the next turn of the persister
        path.with_suffix(".pb.tmp").rmdir()
        await store.persist()
    messages = [record.getMessage() for record in caplog.records]
    assert sum("not saved" in message for message in messages) == 1, messages
    assert any("saved to" in message and "again" in message for message in messages), messages
    assert pb.Snapshot.FromString(path.read_bytes()).version == 7
    assert not store._dirty.is_set()

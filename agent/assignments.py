"""The assignments this agent holds: applied from the control plane's stream, persisted to disk.

The last state is written next to the spool, so an agent restarted while the control plane is
down still runs its monitors, and a reconnect resumes from the version it holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from pathlib import Path
from typing import Protocol

from agent.convert import assignment_from_proto, assignment_to_proto
from agent.records import Assignment
from traxo_protocol.traxo.agent.v1 import agent_pb2 as pb

log = logging.getLogger(__name__)


class AssignmentListener(Protocol):
    def replace_all(self, assignments: dict[str, Assignment]) -> None: ...

    def upsert(self, assignment: Assignment) -> None: ...

    def remove(self, monitor_id: str) -> None: ...


class AssignmentStore:
    def __init__(self, path: Path, listener: AssignmentListener, persist_delay_s: float = 1.0) -> None:
        self._path = path
        self._listener = listener
        self._persist_delay_s = persist_delay_s
        self.version = 0
        self.assignments: dict[str, Assignment] = {}
        self.synced = False  # a snapshot or resume arrived from the control plane in this process
        self.loaded_from_disk = False
        self._dirty = asyncio.Event()
        self._unsaved = False  # the last write failed (a full disk): said once until one succeeds
        self.updated = asyncio.Event()  # set after every applied update; observers clear it

    @property
    def has_state(self) -> bool:
        return self.synced or self.loaded_from_disk

    def load(self) -> bool:
        """Restores the persisted state, if any; a corrupt file is ignored (the server resends)."""
        try:
            snapshot = pb.Snapshot.FromString(self._path.read_bytes())
        except FileNotFoundError:
            return False
        except Exception:
            log.exception("ignoring unreadable assignments file %s", self._path)
            return False
        self._replace(snapshot)
        self.loaded_from_disk = True
        log.info("running %d persisted assignments (version %d)", len(self.assignments), self.version)
        return True

    def apply(self, update: pb.AssignmentUpdate) -> None:
        kind = update.WhichOneof("update")
        if kind == "snapshot":
            self._replace(update.snapshot)
            self.synced = True
            log.info("assignment snapshot: %d monitors, version %d", len(self.assignments), self.version)
        elif kind == "resumed":
            if update.resumed.version != self.version:
                log.warning(
                    "server resumed at version %d, agent holds %d", update.resumed.version, self.version
                )
            self.synced = True
        elif kind == "change":
            self._apply_change(update.change)
        self._dirty.set()
        self.updated.set()

    async def run_persister(self) -> None:
        """Writes the state at most once per persist delay, off the event loop."""
        while True:
            await self._dirty.wait()
            await asyncio.sleep(self._persist_delay_s)
            await self.persist()

    async def persist(self) -> None:
        self._dirty.clear()
        snapshot = pb.Snapshot(
            version=self.version, assignments=[assignment_to_proto(a) for a in self.assignments.values()]
        )
        try:
            await asyncio.to_thread(self._write, snapshot.SerializeToString())
        except OSError as exc:
            # A full or read-only disk: the agent keeps checking with what it holds in memory, and
            # writes again after the persist delay (the file keeps the last state saved, whole).
            self._dirty.set()
            if not self._unsaved:
                log.warning("assignments not saved to %s, retrying: %s", self._path, exc)
            self._unsaved = True
            return
        if self._unsaved:
            log.info("assignments saved to %s again", self._path)
        self._unsaved = False

    def _write(self, data: bytes) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._path.with_suffix(self._path.suffix + ".tmp")
        try:
            tmp.write_bytes(data)
        except OSError:
            with contextlib.suppress(OSError):  # a part written to a full disk holds room the spool needs
                tmp.unlink()
            raise
        os.replace(tmp, self._path)  # atomic: a crash leaves the old file or the new, never half

    def _replace(self, snapshot: pb.Snapshot) -> None:
        assignments: dict[str, Assignment] = {}
        for message in snapshot.assignments:
            assignment = _convert(message)
            if assignment is not None:
                assignments[assignment.spec.monitor_id] = assignment
        self.assignments = assignments
        self.version = snapshot.version
        self._listener.replace_all(assignments)

    def _apply_change(self, change: pb.Change) -> None:
        if change.version <= self.version:
            return  # already applied: a duplicate delivery
        self.version = change.version
        monitor_id = change.assignment.monitor_id
        if change.kind == pb.Change.REMOVE:
            if self.assignments.pop(monitor_id, None) is not None:
                self._listener.remove(monitor_id)
            return
        assignment = _convert(change.assignment)
        if assignment is not None:
            self.assignments[monitor_id] = assignment
            self._listener.upsert(assignment)


def _convert(message: pb.Assignment) -> Assignment | None:
    try:
        return assignment_from_proto(message)
    except ValueError:  # bad config JSON: the API should never send it; skip rather than crash
        log.error("monitor %s has unreadable config; not running it", message.monitor_id)
        return None

"""One agent's assignment stream: a snapshot, or the changes since the version it resumes from; then
the changes its mailbox is told of, until its token is revoked or a newer registration takes over."""

from __future__ import annotations

import enum
from collections.abc import AsyncGenerator
from dataclasses import dataclass

from control_plane.agents.assignment_reads import MonitorAssignment, load_assignments
from control_plane.agents.change_log import ChangeLog
from control_plane.agents.fences import Fences, Superseded, TokenRevoked
from control_plane.agents.mailboxes import ALL, Mailboxes
from control_plane.agents.registry import Registration
from control_plane.db import Database

# A snapshot replaces a run of changes longer than this (and than a fiftieth of the assignments).
# Each message is a write on the stream, and each write waits for a pass of the event loop: while
# the process is busy, an agent told of 300 changes one by one heard the last of them tens of seconds
# later, and rebalancing 200 agents never settled. A snapshot is one write (about 100 bytes an
# assignment), and the agent applies it as the changes it stands for (what did not change keeps
# its schedule).
SNAPSHOT_AFTER_CHANGES = 50
SNAPSHOT_AFTER_SHARE = 50  # ... changes of more than 1/50 of the assignments


class ChangeKind(enum.Enum):
    ADD = "add"
    UPDATE = "update"
    REMOVE = "remove"


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything the agent is to run, replacing what it holds."""

    version: int
    assignments: tuple[MonitorAssignment, ...]


@dataclass(frozen=True, slots=True)
class Resumed:
    """The agent's version is continued from: the changes since follow."""

    version: int


@dataclass(frozen=True, slots=True)
class Change:
    version: int
    kind: ChangeKind
    monitor_id: str
    assignment: MonitorAssignment | None  # None when removed


AssignmentUpdate = Snapshot | Resumed | Change


class AssignmentStreams:
    def __init__(self, db: Database, mailboxes: Mailboxes, change_log: ChangeLog, fences: Fences) -> None:
        self._db = db
        self._mailboxes = mailboxes
        self._change_log = change_log
        self._fences = fences

    async def watch(
        self, registration: Registration, known_version: int
    ) -> AsyncGenerator[AssignmentUpdate, None]:
        """The stream's updates; raises TokenRevoked or Superseded when it must end. Close it when done
        (`contextlib.aclosing`): where it stopped is kept for the agent to resume from."""
        if self._fences.superseded(registration):  # a newer registration got in first
            raise Superseded()
        mailbox = self._mailboxes.open(registration)
        sent = self._change_log.resume(registration.member_key, known_version)
        version = known_version
        try:
            current = await self._load(registration)
            if sent is None or _snapshot_is_shorter(sent, current):
                version, sent = self._change_log.next_version(), current
                yield Snapshot(version, tuple(current.values()))
            else:
                yield Resumed(version)
                for change in self._diff(sent, current, None):
                    # (version, sent) always describe the same state, whichever yield is interrupted:
                    # an agent resuming from `version` must get exactly the changes after it.
                    version = _apply(sent, change)
                    yield change
            while True:
                await mailbox.wake.wait()
                if mailbox.revoked:
                    raise TokenRevoked()
                if mailbox.superseded:
                    raise Superseded()
                pending = mailbox.take()
                scope = None if ALL in pending else pending
                current = await self._load(registration, scope)
                if scope is None and _snapshot_is_shorter(sent, current):
                    # A region's first agent, or a rebalance: a message per monitor would keep the
                    # agent busy for minutes at 100,000 monitors; a snapshot replaces what it holds.
                    version, sent = self._change_log.next_version(), current
                    yield Snapshot(version, tuple(current.values()))
                    continue
                for change in self._diff(sent, current, scope):
                    version = _apply(sent, change)
                    yield change
        finally:
            self._mailboxes.close(mailbox)
            self._change_log.remember(registration.member_key, version, sent or {})

    async def _load(
        self, registration: Registration, scope: set[str] | None = None
    ) -> dict[str, MonitorAssignment]:
        async with self._db.session() as session:
            return await load_assignments(session, registration.member_key, registration.region, scope)

    def _diff(
        self,
        sent: dict[str, MonitorAssignment],
        current: dict[str, MonitorAssignment],
        scope: set[str] | None,
    ) -> list[Change]:
        """Changes that turn `sent` into `current` (within `scope`, or everything), each carrying
        what `sent` holds for its monitor once it is out (`_apply`)."""
        changes: list[Change] = []
        considered = set(sent) | set(current) if scope is None else scope
        for monitor_id in sorted(considered):
            old, new = sent.get(monitor_id), current.get(monitor_id)
            if new is None and old is not None:
                kind = ChangeKind.REMOVE
            elif new is not None and new != old:
                kind = ChangeKind.ADD if old is None else ChangeKind.UPDATE
            else:
                continue
            changes.append(Change(self._change_log.next_version(), kind, monitor_id, new))
        return changes


def _snapshot_is_shorter(sent: dict[str, MonitorAssignment], current: dict[str, MonitorAssignment]) -> bool:
    """True when more monitors changed than 1/SNAPSHOT_AFTER_SHARE of `current` and than
    SNAPSHOT_AFTER_CHANGES: one snapshot then costs both sides less than a message per monitor."""
    limit = max(SNAPSHOT_AFTER_CHANGES, len(current) // SNAPSHOT_AFTER_SHARE)
    changed = 0
    for monitor_id in sent.keys() | current.keys():
        if sent.get(monitor_id) != current.get(monitor_id):
            changed += 1
            if changed > limit:
                return True
    return False


def _apply(sent: dict[str, MonitorAssignment], change: Change) -> int:
    if change.assignment is None:
        sent.pop(change.monitor_id, None)
    else:
        sent[change.monitor_id] = change.assignment
    return change.version

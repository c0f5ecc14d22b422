"""What this process's open assignment streams are told: which monitors to look at again, and when to end."""

from __future__ import annotations

import asyncio
import logging

from control_plane.agents.registry import Registration

log = logging.getLogger(__name__)

ALL = "*"  # an event for every monitor of a stream


class StreamMailbox:
    """What an open WatchAssignments stream has yet to look at: monitor ids, or ALL; and whether it
    must end (its token revoked, or a newer registration of its agent took over)."""

    def __init__(self, registration: Registration) -> None:
        self.registration = registration
        self.member_key = registration.member_key
        self.region = registration.region
        self.token_id = registration.token_id
        self.pending: set[str] = set()
        self.wake = asyncio.Event()
        self.revoked = False
        self.superseded = False

    def post(self, monitor_id: str) -> None:
        self.pending.add(monitor_id)
        self.wake.set()

    def take(self) -> set[str]:
        pending, self.pending = self.pending, set()
        self.wake.clear()
        return pending


class Mailboxes:
    """The mailboxes of the streams open in this process, and which of them hears of what."""

    def __init__(self) -> None:
        self._open: set[StreamMailbox] = set()

    def open(self, registration: Registration) -> StreamMailbox:
        mailbox = StreamMailbox(registration)
        self._open.add(mailbox)
        return mailbox

    def close(self, mailbox: StreamMailbox) -> None:
        self._open.discard(mailbox)

    def on_assignments_changed(self, payload: str) -> None:
        """A region's grants changed (the assigner's "region" or "region:monitor_id")."""
        region, _, monitor_id = payload.partition(":")
        for mailbox in list(self._open):
            if mailbox.region == region:
                mailbox.post(monitor_id or ALL)

    def post_all(self, monitor_id: str) -> None:
        """Every stream looks at the monitor (or with ALL, everything) again."""
        for mailbox in list(self._open):
            mailbox.post(monitor_id)

    def on_reset(self) -> None:
        """Change notifications may have been missed: every stream looks at everything again."""
        self.post_all(ALL)

    def end_token(self, token_id: str) -> None:
        for mailbox in list(self._open):
            if mailbox.token_id == token_id:
                mailbox.revoked = True
                mailbox.wake.set()

    def end_older(self, agent_id: str, incarnation: int) -> None:
        """End the streams of the agent's registrations before `incarnation`."""
        for mailbox in list(self._open):
            registration = mailbox.registration
            if registration.agent_id == agent_id and registration.incarnation < incarnation:
                # Usually the stream of a process that is gone (its connection not yet timed out);
                # if it is alive, two processes share this token and agent name.
                log.warning(
                    "agent %s registered again (incarnation %d): ending the stream of incarnation %d;"
                    " if both processes are running, give each its own --name",
                    agent_id,
                    incarnation,
                    registration.incarnation,
                )
                mailbox.superseded = True
                mailbox.wake.set()

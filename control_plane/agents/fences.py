"""Which agents' streams must end, as heard of in this process: their token was revoked, or a newer
registration of their agent took over."""

from __future__ import annotations

from sqlalchemy import select

from control_plane.agents.clock import Clock
from control_plane.agents.mailboxes import Mailboxes
from control_plane.agents.registry import Registration
from control_plane.db import Database
from control_plane.models import AgentToken


class StreamEnded(Exception):
    """An agent's stream must end; the message tells the agent why."""


class TokenRevoked(StreamEnded):
    def __init__(self) -> None:
        super().__init__("agent token revoked")


class Superseded(StreamEnded):
    def __init__(self) -> None:
        super().__init__(
            "this agent registered again (same token and name): this stream belongs to an older registration"
        )


class Fences:
    def __init__(
        self, db: Database, clock: Clock, mailboxes: Mailboxes, *, recheck_seconds: float = 5.0
    ) -> None:
        self._db = db
        self._clock = clock
        self._mailboxes = mailboxes
        self._recheck_seconds = recheck_seconds
        # Token ids revoked as heard here (notified, or found by a recheck): results streams check per batch.
        self._revoked_tokens: set[str] = set()
        # agent id -> its newest incarnation heard of: results streams of older ones end.
        self._incarnations: dict[str, int] = {}

    def on_token_revoked(self, token_id: str) -> None:
        self._revoked_tokens.add(token_id)
        self._mailboxes.end_token(token_id)

    def on_agent_registered(self, payload: str) -> None:
        """A registration (the registry's "agent_id:incarnation") fences the agent's older ones."""
        agent_id, _, incarnation_text = payload.rpartition(":")
        incarnation = int(incarnation_text)
        if incarnation <= self._incarnations.get(agent_id, 0):
            return
        self._incarnations[agent_id] = incarnation
        self._mailboxes.end_older(agent_id, incarnation)

    def superseded(self, registration: Registration) -> bool:
        """True once a newer registration of the same agent is known here."""
        return self._incarnations.get(registration.agent_id, 0) > registration.incarnation

    def watch_token(self, token_id: str) -> TokenWatch:
        """For one results stream: whether its token is still good."""
        return TokenWatch(self, token_id, self._clock, self._recheck_seconds)

    def is_revoked(self, token_id: str) -> bool:
        """Revoked as far as this process has heard (a notification, or a recheck)."""
        return token_id in self._revoked_tokens

    async def recheck(self, token_id: str) -> None:
        """Ask the database, for revocations by another process that this one was not told of."""
        async with self._db.session() as session:
            revoked_at = await session.scalar(select(AgentToken.revoked_at).where(AgentToken.id == token_id))
        if revoked_at is not None:
            self._revoked_tokens.add(token_id)


class TokenWatch:
    """A token revoked while a stream is open stops it: at once when this process heard of the
    revocation, else (revoked by another process, no LISTEN on SQLite) within `recheck_seconds`."""

    def __init__(self, fences: Fences, token_id: str, clock: Clock, recheck_seconds: float) -> None:
        self._fences = fences
        self._token_id = token_id
        self._clock = clock
        self._recheck_seconds = recheck_seconds
        self._checked = clock.monotonic()

    async def revoked(self) -> bool:
        now = self._clock.monotonic()
        if now - self._checked > self._recheck_seconds:
            self._checked = now
            await self._fences.recheck(self._token_id)
        return self._fences.is_revoked(self._token_id)

"""The agents' side of a control-plane process: its parts built and wired, the gRPC server started,
and all of it stopped together.

The parts: the coordinator keeps grants current; the mailboxes tell open assignment streams what
changed; the change log numbers what streams send and remembers where they stopped; the fences end
streams whose token was revoked or whose agent registered again; the lastCheck writer follows
ingestion; the lease renewals gather the agents' renewals (their calls, and their results
arriving) into one write. Change notifications reach them through the subscriptions made here.
"""

from __future__ import annotations

import logging

from grpc_health.v1 import health

from control_plane.agents.assigner import ASSIGNMENTS_TOPIC
from control_plane.agents.change_log import ChangeLog
from control_plane.agents.clock import SYSTEM_CLOCK, Clock
from control_plane.agents.coordinator import AgentCoordinator
from control_plane.agents.fences import Fences
from control_plane.agents.ingest import IngestGroups
from control_plane.agents.leases import LeaseRenewals
from control_plane.agents.mailboxes import Mailboxes
from control_plane.agents.registry import AGENTS_TOPIC
from control_plane.agents.server import AgentService, GrpcServers, start_grpc_server
from control_plane.agents.tokens import TOKENS_TOPIC
from control_plane.agents.watch import AssignmentStreams
from control_plane.core.changes import Subscriber
from control_plane.db import Database, brief_error
from control_plane.results import LastCheckWriter
from control_plane.services.monitors import MONITORS_TOPIC
from control_plane.settings import Settings

log = logging.getLogger(__name__)


class AgentsEndpoint:
    def __init__(
        self,
        db: Database,
        coordinator: AgentCoordinator,
        change_log: ChangeLog,
        last_checks: LastCheckWriter,
        leases: LeaseRenewals,
        subscriptions: list[tuple[str, Subscriber]],
        groups: IngestGroups,
    ) -> None:
        self.coordinator = coordinator
        self.change_log = change_log
        self._db = db
        self._last_checks = last_checks
        self._groups = groups
        self.leases = leases
        self._subscriptions = subscriptions
        self.server: GrpcServers | None = None
        self.health: health.aio.HealthServicer | None = None
        self.port = 0

    @classmethod
    async def start(
        cls, db: Database, settings: Settings, address: tuple[str, int], *, clock: Clock = SYSTEM_CLOCK
    ) -> AgentsEndpoint:
        mailboxes = Mailboxes()
        change_log = ChangeLog(clock)
        fences = Fences(db, clock, mailboxes)
        coordinator = AgentCoordinator(db, settings, clock, announce=mailboxes.post_all)
        last_checks = LastCheckWriter(db)
        leases = LeaseRenewals(db, clock, lease=coordinator.lease)
        subscriptions: list[tuple[str, Subscriber]] = [
            (MONITORS_TOPIC, coordinator.on_monitor_changed),
            (ASSIGNMENTS_TOPIC, mailboxes.on_assignments_changed),
            (TOKENS_TOPIC, fences.on_token_revoked),
            (AGENTS_TOPIC, fences.on_agent_registered),
        ]
        for topic, subscriber in subscriptions:
            db.changes.subscribe(topic, subscriber)
        db.changes.on_reset(mailboxes.on_reset)
        # SQLite has one writer: more committers would only wait for each other.
        groups = IngestGroups(db, last_checks, committers=1 if db.is_sqlite else 4)
        endpoint = cls(db, coordinator, change_log, last_checks, leases, subscriptions, groups)
        last_checks.start()
        groups.start()
        leases.start()
        await coordinator.start()
        service = AgentService(
            db,
            clock,
            coordinator,
            AssignmentStreams(db, mailboxes, change_log, fences),
            fences,
            last_checks,
            leases,
            groups,
        )
        try:
            endpoint.server, endpoint.port, endpoint.health = await start_grpc_server(
                service, settings, *address
            )
        except BaseException:
            await endpoint.stop()
            raise
        return endpoint

    async def not_serving(self) -> None:
        """The health service says NOT_SERVING from now on (load balancers stop sending agents)."""
        if self.health is not None:
            await self.health.enter_graceful_shutdown()

    async def stop(self, grace: float = 2) -> None:
        # New calls are refused at once; open streams get `grace` seconds, then end with
        # CANCELLED. Agents reconnect (to another replica, or to us after a restart) and replay
        # what was not acknowledged, which the idempotent insert stores once.
        await self.not_serving()
        if self.server is not None:
            await self.server.stop(grace=grace)
        await self._groups.stop()  # after the streams: no batch is taken any more
        await self.coordinator.stop()
        await self.leases.stop()
        try:
            await self._last_checks.stop()
        except Exception as exc:
            log.error("writing the last lastCheck updates failed: %s", brief_error(exc))
        for topic, subscriber in self._subscriptions:
            self._db.changes.unsubscribe(topic, subscriber)

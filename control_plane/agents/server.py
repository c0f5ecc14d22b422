"""The gRPC AgentService: thin handlers over tokens, registry, coordinator, assignment streams and
ingest; protobuf in and out goes through convert.py."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import Counter
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import aclosing, asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.duration_pb2 import Duration
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from control_plane.agents import registry
from control_plane.agents.clock import Clock
from control_plane.agents.convert import ack_to_proto, results_from_proto, timestamp, update_to_proto
from control_plane.agents.coordinator import AgentCoordinator
from control_plane.agents.fences import Fences, StreamEnded, Superseded, TokenRevoked
from control_plane.agents.ingest import IngestGroups, ingest_batch
from control_plane.agents.leases import LeaseRenewals
from control_plane.agents.tokens import authenticate_token
from control_plane.agents.watch import AssignmentStreams
from control_plane.db import Database, UnavailableLog, brief_error, database_unavailable
from control_plane.models import AgentToken
from control_plane.observability.metrics import (
    AGENT_BATCHES_LIMIT,
    AGENT_BATCHES_STORING,
    AGENT_REGISTRATIONS,
    count_agent_batch,
)
from control_plane.results import LastCheckWriter
from control_plane.settings import Settings
from traxo_protocol.traxo.agent.v1 import agent_pb2 as pb
from traxo_protocol.traxo.agent.v1 import agent_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

SERVICE_NAME = "traxo.agent.v1.AgentService"
_BATCHES_AT_ONCE = 4
_MAX_NAME = 128
_ENDED_CODES = {TokenRevoked: grpc.StatusCode.UNAUTHENTICATED, Superseded: grpc.StatusCode.ABORTED}
_DATABASE_UNAVAILABLE = "the control plane's database is unavailable; retry"


class AgentService(pb_grpc.AgentServiceServicer):
    def __init__(
        self,
        db: Database,
        clock: Clock,
        coordinator: AgentCoordinator,
        assignments: AssignmentStreams,
        fences: Fences,
        last_checks: LastCheckWriter,
        leases: LeaseRenewals,
        groups: IngestGroups | None = None,
    ) -> None:
        """`groups`: how batches are stored together (each alone in a transaction of its own without)."""
        self.db = db
        self.clock = clock
        self.coordinator = coordinator
        self.assignments = assignments
        self.fences = fences
        self.last_checks = last_checks
        self.leases = leases
        self.groups = groups
        # Batches converted and being stored at once, over every stream of this process
        # (TRAXO_AGENT_RESULTS_MAX_BATCHES, read from the settings the coordinator was given).
        self._storing = asyncio.Semaphore(coordinator.settings.agent_results_max_batches)
        AGENT_BATCHES_LIMIT.set(coordinator.settings.agent_results_max_batches)
        # A database outage is UNAVAILABLE to the agents (they retry with backoff, their results wait
        # in their spools), one warning line per window: not UNKNOWN with the SQL error's text, and
        # not grpc's traceback for every retry of every agent.
        self._outage = UnavailableLog(answer="UNAVAILABLE")

    @asynccontextmanager
    async def _database(self, context: grpc.aio.ServicerContext, method: str) -> AsyncIterator[None]:
        """Aborts the call as UNAVAILABLE when what it runs finds the database unable to take work;
        any other error goes on as it was (a statement's own error keeps its traceback)."""
        try:
            yield
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            if not database_unavailable(exc):
                raise
            self._outage.note("gRPC", method, exc, None)
            await context.abort(grpc.StatusCode.UNAVAILABLE, _DATABASE_UNAVAILABLE)

    async def _token(self, context: grpc.aio.ServicerContext) -> AgentToken:
        metadata = dict(context.invocation_metadata() or ())
        header = str(metadata.get("authorization", ""))
        scheme, _, raw = header.partition(" ")
        token = None
        if scheme.lower() == "bearer" and raw:
            async with self.db.session() as session:
                token = await authenticate_token(session, raw.strip())
        if token is None:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "unknown or revoked agent token")
        assert token is not None
        return token

    def _lease(self) -> Duration:
        lease = Duration()
        lease.FromTimedelta(self.coordinator.lease)
        return lease

    async def Register(
        self, request: pb.RegisterRequest, context: grpc.aio.ServicerContext
    ) -> pb.RegisterResponse:
        async with self._database(context, "Register"):
            return await self._register(request, context)
        raise AssertionError("unreachable: the block returns or raises")

    async def _register(
        self, request: pb.RegisterRequest, context: grpc.aio.ServicerContext
    ) -> pb.RegisterResponse:
        token = await self._token(context)
        if request.region != token.region:
            await context.abort(
                grpc.StatusCode.PERMISSION_DENIED,
                f"this token is for region {token.region!r}, not {request.region!r}",
            )
        name = request.name.strip()
        if not name or len(name) > _MAX_NAME:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"name must be 1-{_MAX_NAME} characters")
        now = self.clock.wall()
        async with self.db.session() as session:
            registered = await registry.register(
                session,
                token,
                name=name,
                version=request.version[:32],
                capabilities=list(request.capabilities),
                now=now,
            )
        registration = registered.registration
        self.leases.registered(registration.agent_id)
        AGENT_REGISTRATIONS.labels(registration.region).inc()
        log.info(
            "agent %s (%s) registered in %s (incarnation %d)",
            registration.agent_id,
            name,
            registration.region,
            registration.incarnation,
        )
        if registered.joined:
            # Assigning a large region takes a while; the agent's stream hears of it when it is done.
            # (An agent that merely restarted keeps its share: nothing to rebalance.)
            self.coordinator.reassign_soon(registration.region)
        return pb.RegisterResponse(
            agent_id=registration.agent_id,
            lease_duration=self._lease(),
            server_time=timestamp(now),
            results_renew_lease=True,
        )

    async def RenewLease(
        self, request: pb.RenewLeaseRequest, context: grpc.aio.ServicerContext
    ) -> pb.RenewLeaseResponse:
        async with self._database(context, "RenewLease"):
            token = await self._token(context)
            held = await self.leases.renew(token.id, request.agent_id)
        return pb.RenewLeaseResponse(
            held=held, lease_duration=self._lease(), server_time=timestamp(self.clock.wall())
        )

    async def WatchAssignments(
        self, request: pb.WatchAssignmentsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.AssignmentUpdate]:
        async with self._database(context, "WatchAssignments"):
            token = await self._token(context)
            async with self.db.session() as session:
                registration = await registry.current_registration(session, token, request.agent_id)
            if registration is None:
                await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "unknown agent_id: register first")
            assert registration is not None
            try:
                # Closed at once when the call ends, so where the stream stopped is kept for resuming.
                async with aclosing(self.assignments.watch(registration, request.known_version)) as updates:
                    async for update in updates:
                        yield update_to_proto(update)
            except StreamEnded as ended:
                await _end(context, ended)

    async def StreamResults(
        self, request_iterator: AsyncIterator[pb.ResultBatch], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.ResultAck]:
        async with self._database(context, "StreamResults"):
            token = await self._token(context)
        # Up to _BATCHES_AT_ONCE batches of one stream are stored concurrently (the agent keeps
        # several in flight, and a batch spends most of its time waiting on the database), within
        # the process's bound over all streams; each is acknowledged once committed, in whatever
        # order they finish (acks name their sequence).
        finished: asyncio.Queue[pb.ResultAck | BaseException | None] = asyncio.Queue()
        slots = asyncio.Semaphore(_BATCHES_AT_ONCE)
        running: set[asyncio.Task[None]] = set()
        senders: dict[str, registry.Registration] = {}
        in_hand: Counter[str] = Counter()  # agent id -> its batches read and not yet stored

        async def store(batch: pb.ResultBatch, sender: registry.Registration) -> None:
            try:
                valid, invalid = results_from_proto(
                    batch.results,
                    region=sender.region,
                    agent_id=sender.agent_id,
                    now=self.clock.wall(),
                )
                outcome = await ingest_batch(
                    self.db, sender, valid, last_checks=self.last_checks, groups=self.groups
                )
                count_agent_batch(sender.region, acked=True, rejected=len(invalid) + len(outcome.rejected))
                await finished.put(ack_to_proto(batch.sequence, [*invalid, *outcome.rejected]))
            except Exception as exc:  # no ack: the agent replays the batch after reconnecting (and again)
                count_agent_batch(sender.region, acked=False)
                if not self._outage.outage_noted("storing an agent's batch", exc):
                    log.error(
                        "storing a batch of %d results failed: %s", len(batch.results), brief_error(exc)
                    )
                await finished.put(exc)

        async def read() -> None:
            try:
                await self._read_batches(request_iterator, token, slots, store, running, senders, in_hand)
                await asyncio.gather(*running)
                await finished.put(None)
            except BaseException as exc:
                await finished.put(exc if isinstance(exc, Exception) else None)
                raise

        reader = asyncio.create_task(read())
        hearing = asyncio.create_task(self._hear_while_held(senders, in_hand))
        try:
            # Only this loop ends the call, with the first ending it is handed: the reader's, or a
            # failed batch's (two aborts of one call are grpc's UsageError, logged with a traceback).
            while (item := await finished.get()) is not None:
                if isinstance(item, _EndCall):
                    await context.abort(item.code, item.details)
                if isinstance(item, BaseException):
                    await context.abort(grpc.StatusCode.UNAVAILABLE, "storing results failed; replay them")
                assert isinstance(item, pb.ResultAck)
                yield item
        finally:
            hearing.cancel()
            reader.cancel()
            for task in running:
                task.cancel()
            await asyncio.gather(hearing, reader, *running, return_exceptions=True)

    async def _hear_while_held(
        self, senders: dict[str, registry.Registration], in_hand: Counter[str]
    ) -> None:
        """While a batch of an agent is in this process's hands, waiting for the bound or being
        stored, the agent is waiting for us, not silent: its lease is kept as its results arriving
        keep it. (A busy process holding batches longer than the missed periods lapsed the very
        agents it kept waiting, and the moves made it busier still: bench/agents_at_scale.py.)"""
        while True:
            # Twice a renewal period: a renewal is written a flush after it is asked for, and
            # `heard` skips one asked for within a period of the last written.
            await asyncio.sleep(self.leases.heard_every / 2)
            for agent_id, held in in_hand.items():
                if held > 0:
                    self.leases.heard(senders[agent_id])

    async def _read_batches(
        self,
        request_iterator: AsyncIterator[pb.ResultBatch],
        token: AgentToken,
        slots: asyncio.Semaphore,
        store: Callable[[pb.ResultBatch, registry.Registration], Coroutine[Any, Any, None]],
        running: set[asyncio.Task[None]],
        senders: dict[str, registry.Registration],
        in_hand: Counter[str],
    ) -> None:
        token_watch = self.fences.watch_token(token.id)

        def released(task: asyncio.Task[None]) -> None:
            # When the task is done however it ends: one cancelled before its first step never
            # runs `store`, so a `finally` there would lose the process's permit for good.
            running.discard(task)
            slots.release()
            self._storing.release()
            AGENT_BATCHES_STORING.dec()

        async for batch in request_iterator:
            if await token_watch.revoked():
                raise _EndCall.of(TokenRevoked())
            sender = senders.get(batch.agent_id)
            if sender is None:
                async with self.db.session() as session:
                    sender = await registry.any_registration(session, token, batch.agent_id)
                if sender is None:
                    raise _EndCall(grpc.StatusCode.FAILED_PRECONDITION, "unknown agent_id: register first")
                senders[batch.agent_id] = sender
            if self.fences.superseded(sender):
                raise _EndCall.of(Superseded())
            if self.leases.lapsed(sender.agent_id):
                raise _EndCall(
                    grpc.StatusCode.FAILED_PRECONDITION, "the agent's lease lapsed: register again"
                )
            self.leases.heard(sender)  # results flowing keep the lease, however late its renewals
            in_hand[sender.agent_id] += 1
            # Nothing more is read from this stream until both are free: what the agent sends
            # meanwhile waits in HTTP/2 flow control, then in its spool, unacknowledged.
            await slots.acquire()
            await self._storing.acquire()
            AGENT_BATCHES_STORING.inc()
            task = asyncio.create_task(store(batch, sender))
            running.add(task)
            task.add_done_callback(released)
            task.add_done_callback(functools.partial(_stored, in_hand, sender.agent_id))


def _stored(in_hand: Counter[str], agent_id: str, _: asyncio.Task[None]) -> None:
    in_hand[agent_id] -= 1


async def _end(context: grpc.aio.ServicerContext, ended: StreamEnded) -> None:
    await context.abort(_ENDED_CODES[type(ended)], str(ended))


class _EndCall(Exception):
    """How the results stream's reader says the call must end (its handler ends it)."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code, self.details = code, details

    @classmethod
    def of(cls, ended: StreamEnded) -> _EndCall:
        return cls(_ENDED_CODES[type(ended)], str(ended))


SERVER_OPTIONS = [
    # Agents ping idle connections every ~20 s; allow it rather than answering GOAWAY.
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
    ("grpc.http2.max_ping_strikes", 0),
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.max_receive_message_length", 32 * 1024 * 1024),
]


def _read_pair(key_path: str, cert_path: str) -> tuple[bytes, bytes]:
    return Path(key_path).read_bytes(), Path(cert_path).read_bytes()


class GrpcServers:
    """The AgentService's gRPC servers on one port, stopped together."""

    def __init__(self, servers: list[grpc.aio.Server]) -> None:
        self.servers = servers

    async def stop(self, grace: float | None) -> None:
        await asyncio.gather(*(server.stop(grace) for server in self.servers))


async def start_grpc_server(
    service: AgentService, settings: Settings, host: str, port: int
) -> tuple[GrpcServers, int, health.aio.HealthServicer]:
    """Serves AgentService and the standard health service on `settings.grpc_listeners` servers
    sharing one port; returns them, the port and the health service (enter_graceful_shutdown()
    says NOT_SERVING when the process drains)."""
    credentials = None
    if settings.grpc_tls_cert and settings.grpc_tls_key:
        key, cert = await asyncio.to_thread(_read_pair, settings.grpc_tls_key, settings.grpc_tls_cert)
        credentials = grpc.ssl_server_credentials([(key, cert)])
    health_servicer = health.aio.HealthServicer()
    servers: list[grpc.aio.Server] = []
    bound = port
    try:
        for _ in range(settings.grpc_listeners):
            # SO_REUSEPORT is gRPC's default on Linux; asked for here all the same, since the
            # servers after the first bind the port the first one got.
            server = grpc.aio.server(options=[*SERVER_OPTIONS, ("grpc.so_reuseport", 1)])
            pb_grpc.add_AgentServiceServicer_to_server(service, server)
            health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
            address = f"{host}:{bound}"
            if credentials is not None:
                got = server.add_secure_port(address, credentials)
            else:
                got = server.add_insecure_port(address)
            if got == 0:
                raise OSError(f"cannot listen for gRPC on {address}")
            bound = got
            servers.append(server)
            await server.start()
    except BaseException:
        await GrpcServers(servers).stop(None)
        raise
    await health_servicer.set(SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    log.info("gRPC AgentService listening on %s:%d (%d servers)", host, bound, len(servers))
    return GrpcServers(servers), bound, health_servicer

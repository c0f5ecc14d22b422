"""The agent's side of the gRPC protocol: register, watch assignments, stream results, renew the lease.

One session per connection; when any part of it fails, the whole session is torn down and a new one
is dialled with exponential backoff and jitter (a renewal that fails or times out is only tried
again: see `_renew`). Meanwhile the scheduler keeps running the last
assignments and results pile up in the spool.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence

import grpc

from agent.assignments import AssignmentStore
from agent.clock import Clock
from agent.metrics import AgentMetrics
from agent.results import ResultPipeline
from agent.settings import AgentSettings
from traxo_protocol.traxo.agent.v1 import agent_pb2 as pb
from traxo_protocol.traxo.agent.v1.agent_pb2_grpc import AgentServiceStub

log = logging.getLogger(__name__)

_KEEPALIVE_OPTIONS = [
    ("grpc.keepalive_time_ms", 20_000),  # ping an idle connection so dead peers show within ~30 s
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    # Each reconnect attempt makes a new channel; without a channel-local subchannel pool gRPC
    # would share the old connection and its own reconnect backoff (up to 120 s), so an agent
    # could keep failing for many seconds after the control plane is back.
    ("grpc.use_local_subchannel_pool", 1),
    ("grpc.initial_reconnect_backoff_ms", 500),
    ("grpc.min_reconnect_backoff_ms", 500),
    ("grpc.max_reconnect_backoff_ms", 5_000),
    # A snapshot of 50,000 monitors is ~5 MB, past gRPC's default 4 MiB limit.
    ("grpc.max_receive_message_length", 256 * 1024 * 1024),
]
_RPC_TIMEOUT_S = 10.0
# A renewal answered so ends the session: the token is refused, or the call itself is wrong.
_RENEWAL_ENDS_SESSION = {
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.UNIMPLEMENTED,
}


class AuthenticationFailed(Exception):
    """The control plane refused the token: retrying cannot help, so the agent exits."""


class LeaseLost(ConnectionError):
    pass


class Backoff:
    """Exponential backoff with full jitter, about 1 s to 30 s."""

    def __init__(self, base_s: float = 1.0, cap_s: float = 30.0, rng: random.Random | None = None) -> None:
        self._base_s, self._cap_s = base_s, cap_s
        self._rng = rng or random.Random()
        self._attempt = 0

    def next_delay(self) -> float:
        ceiling = min(self._cap_s, self._base_s * 2**self._attempt)
        self._attempt += 1
        # Half fixed, half random: spreads a fleet's reconnects without ever retrying at once.
        return ceiling / 2 + self._rng.uniform(0, ceiling / 2)

    def reset(self) -> None:
        self._attempt = 0


class ControlPlaneConnection:
    def __init__(
        self,
        settings: AgentSettings,
        capabilities: Sequence[str],
        version: str,
        store: AssignmentStore,
        pipeline: ResultPipeline,
        metrics: AgentMetrics,
        clock: Clock,
        backoff: Backoff | None = None,
    ) -> None:
        self._settings = settings
        self._capabilities = capabilities  # a live view: the registry fills it once it has probed the host
        self._version = version
        self._store = store
        self._pipeline = pipeline
        self._metrics = metrics
        self._clock = clock
        self._backoff = backoff or Backoff()
        self._metadata = (("authorization", f"Bearer {settings.token}"),)
        self.agent_id: str | None = None

    @property
    def registered(self) -> bool:
        return self.agent_id is not None

    async def run(self) -> None:
        """Stays connected until cancelled; raises AuthenticationFailed when the token is refused."""
        while True:
            try:
                await self._session()
            except Exception as exc:  # any failure ends the session; only a refused token ends the agent
                errors = _leaves(exc)
                for error in errors:
                    if (
                        isinstance(error, grpc.aio.AioRpcError)
                        and error.code() == grpc.StatusCode.UNAUTHENTICATED
                    ):
                        raise AuthenticationFailed(error.details() or "invalid agent token") from None
                first = errors[0]
                if isinstance(first, grpc.aio.AioRpcError):
                    log.warning("control plane connection failed: %s %s", first.code().name, first.details())
                elif isinstance(first, ConnectionError | OSError):
                    log.warning("control plane connection lost: %s", first)
                else:
                    log.error("control plane session crashed", exc_info=first)
            delay = self._backoff.next_delay()
            self._metrics.reconnects.inc()
            log.info("reconnecting in %.1fs", delay)
            await asyncio.sleep(delay)

    def _channel(self) -> grpc.aio.Channel:
        target = self._settings.control_plane
        if not self._settings.tls:
            return grpc.aio.insecure_channel(target, options=_KEEPALIVE_OPTIONS)
        ca = self._settings.ca_file.read_bytes() if self._settings.ca_file else None
        return grpc.aio.secure_channel(
            target, grpc.ssl_channel_credentials(root_certificates=ca), options=_KEEPALIVE_OPTIONS
        )

    async def _session(self) -> None:
        channel = self._channel()
        try:
            stub = AgentServiceStub(channel)
            reply = await stub.Register(
                pb.RegisterRequest(
                    name=self._settings.name,
                    region=self._settings.region,
                    version=self._version,
                    capabilities=list(self._capabilities),
                ),
                metadata=self._metadata,
                timeout=_RPC_TIMEOUT_S,
            )
            self.agent_id = reply.agent_id
            self._backoff.reset()
            self._metrics.connected.set(1)
            if reply.HasField("server_time"):
                self._metrics.clock_skew.set(self._clock.wall() - reply.server_time.ToNanoseconds() / 1e9)
            lease_s = reply.lease_duration.ToTimedelta().total_seconds() or 30.0
            log.info(
                "registered as %s in region %s (lease %.0fs)", reply.agent_id, self._settings.region, lease_s
            )
            async with asyncio.TaskGroup() as group:
                group.create_task(self._watch(stub, reply.agent_id))
                group.create_task(self._stream_results(stub, reply.agent_id))
                group.create_task(self._renew(stub, reply.agent_id, lease_s, reply.results_renew_lease))
        finally:
            self.agent_id = None
            self._metrics.connected.set(0)
            await channel.close(grace=None)

    async def _watch(self, stub: AgentServiceStub, agent_id: str) -> None:
        call = stub.WatchAssignments(
            pb.WatchAssignmentsRequest(agent_id=agent_id, known_version=self._store.version),
            metadata=self._metadata,
        )
        async for update in call:
            self._store.apply(update)
            self._metrics.assignment_version.set(self._store.version)
        raise ConnectionError("the control plane ended the assignment stream")

    async def _stream_results(self, stub: AgentServiceStub, agent_id: str) -> None:
        call = stub.StreamResults(metadata=self._metadata)
        await self._pipeline.send_over(call, agent_id)

    async def _renew(self, stub: AgentServiceStub, agent_id: str, lease_s: float, by_results: bool) -> None:
        """Renew about three times a lease period; with `by_results` (the server renews the lease of
        every batch it receives), only when no batch was acknowledged since the last time: 200
        agents renewing every few seconds were calls a busy control plane could not take in.

        A renewal that fails or times out is tried again at the next one, and the session goes on: a
        busy control plane answers late, and tearing the session down for it (a new registration, a
        new snapshot, every unacknowledged batch sent again) would make it busier still. The results
        arriving keep the lease meanwhile; a lost connection ends the streams, and so the session,
        anyway."""
        acks = self._pipeline.acks
        failing = False
        while True:
            await asyncio.sleep(lease_s / 3)
            if by_results and self._pipeline.acks != acks:
                acks = self._pipeline.acks  # renewed by those batches
                continue
            try:
                reply = await stub.RenewLease(
                    pb.RenewLeaseRequest(agent_id=agent_id),
                    metadata=self._metadata,
                    timeout=min(_RPC_TIMEOUT_S, lease_s),
                )
            except grpc.aio.AioRpcError as exc:
                if exc.code() in _RENEWAL_ENDS_SESSION:
                    raise
                self._metrics.renewals_failed.inc()
                if not failing:  # one line a run of failures
                    log.warning("renewing the lease failed (%s); trying again", exc.code().name)
                failing = True
                continue
            if not reply.held:
                raise LeaseLost("the control plane no longer holds this agent's lease; registering again")
            if failing:
                log.info("the lease is renewed again")
                failing = False
            if reply.HasField("lease_duration") and reply.lease_duration.ToTimedelta().total_seconds() > 0:
                lease_s = reply.lease_duration.ToTimedelta().total_seconds()


def _leaves(exc: BaseException) -> list[BaseException]:
    """The real errors inside TaskGroup's exception groups."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]

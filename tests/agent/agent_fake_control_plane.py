"""A fake control plane for agent tests: the real AgentService over a real socket, state in memory."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable

import grpc
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from tests.waiting import eventually
from traxo_protocol.traxo.agent.v1 import agent_pb2 as pb
from traxo_protocol.traxo.agent.v1 import agent_pb2_grpc


class FakeControlPlane(agent_pb2_grpc.AgentServiceServicer):
    def __init__(self, token: str, lease_s: float = 30.0) -> None:
        self.token = token
        self.lease_s = lease_s
        self.port = 0
        self.server: grpc.aio.Server | None = None
        self.registrations: list[pb.RegisterRequest] = []
        self.watch_requests: list[pb.WatchAssignmentsRequest] = []
        self.renewals: list[str] = []
        self.lease_held = True
        self.renewals_refused = 0  # the next this many renewals answer UNAVAILABLE
        self.results_renew_lease = False  # what Register tells the agent
        self.batches: list[pb.ResultBatch] = []
        self.results: dict[str, pb.CheckResult] = {}  # committed, by result id (idempotent insert)
        self.deliveries: dict[str, int] = {}  # how often each result id arrived
        self.acked_sequences: list[int] = []
        self.fenced_monitors: set[str] = set()
        self.commit = asyncio.Event()  # cleared: batches are received but never committed nor acked
        self.commit.set()
        self.resumable = True
        self.version = 0
        self.assignments: dict[str, pb.Assignment] = {}
        self.change_log: list[pb.Change] = []
        self._watchers: list[asyncio.Queue[pb.Change]] = []
        self._changed = asyncio.Event()
        self._ids = itertools.count(1)

    # --- test controls -----------------------------------------------------------------------------

    async def start(self) -> None:
        self.server = grpc.aio.server()
        agent_pb2_grpc.add_AgentServiceServicer_to_server(self, self.server)
        self.port = self.server.add_insecure_port(f"127.0.0.1:{self.port}")
        await self.server.start()

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop(grace=None)
            self.server = None

    async def restart(self) -> None:
        """Same port, same state: like a control plane restarting on its database."""
        await self.stop()
        await self.start()

    def set_monitor(self, assignment: pb.Assignment) -> None:
        kind = pb.Change.UPDATE if assignment.monitor_id in self.assignments else pb.Change.ADD
        self.assignments[assignment.monitor_id] = assignment
        self._publish(pb.Change(kind=kind, assignment=assignment))

    def remove_monitor(self, monitor_id: str) -> None:
        self.assignments.pop(monitor_id)
        self._publish(pb.Change(kind=pb.Change.REMOVE, assignment=pb.Assignment(monitor_id=monitor_id)))

    async def wait_for(self, predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
        await eventually(predicate, timeout_s, "the fake control plane's awaited state", wake=self._changed)

    def _publish(self, change: pb.Change) -> None:
        self.version += 1
        change.version = self.version
        self.change_log.append(change)
        for queue in self._watchers:
            queue.put_nowait(change)
        self._notify()

    def _notify(self) -> None:
        self._changed.set()

    async def _authenticate(self, context: grpc.aio.ServicerContext) -> None:
        metadata = dict(context.invocation_metadata() or ())
        if metadata.get("authorization") != f"Bearer {self.token}":
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "unknown or revoked agent token")

    # --- the service -------------------------------------------------------------------------------

    async def Register(
        self, request: pb.RegisterRequest, context: grpc.aio.ServicerContext
    ) -> pb.RegisterResponse:
        await self._authenticate(context)
        self.registrations.append(request)
        self.lease_held = True
        self._notify()
        now = Timestamp()
        now.GetCurrentTime()
        return pb.RegisterResponse(
            agent_id=f"agt_{next(self._ids)}",
            lease_duration=Duration(nanos=int(self.lease_s % 1 * 1e9), seconds=int(self.lease_s)),
            server_time=now,
            results_renew_lease=self.results_renew_lease,
        )

    async def RenewLease(
        self, request: pb.RenewLeaseRequest, context: grpc.aio.ServicerContext
    ) -> pb.RenewLeaseResponse:
        await self._authenticate(context)
        self.renewals.append(request.agent_id)
        self._notify()
        if self.renewals_refused > 0:
            self.renewals_refused -= 1
            await context.abort(grpc.StatusCode.UNAVAILABLE, "busy")
        return pb.RenewLeaseResponse(held=self.lease_held)

    async def WatchAssignments(
        self, request: pb.WatchAssignmentsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.AssignmentUpdate]:
        await self._authenticate(context)
        self.watch_requests.append(request)
        queue: asyncio.Queue[pb.Change] = asyncio.Queue()
        self._watchers.append(queue)
        self._notify()
        try:
            if self.resumable and 0 < request.known_version <= self.version:
                yield pb.AssignmentUpdate(resumed=pb.Resumed(version=request.known_version))
                for change in self.change_log:
                    if change.version > request.known_version:
                        yield pb.AssignmentUpdate(change=change)
            else:
                yield pb.AssignmentUpdate(
                    snapshot=pb.Snapshot(version=self.version, assignments=list(self.assignments.values()))
                )
            while True:
                yield pb.AssignmentUpdate(change=await queue.get())
        finally:
            self._watchers.remove(queue)

    async def StreamResults(
        self, request_iterator: AsyncIterator[pb.ResultBatch], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.ResultAck]:
        await self._authenticate(context)
        async for batch in request_iterator:
            self.batches.append(batch)
            self._notify()
            await self.commit.wait()
            ack = pb.ResultAck(sequence=batch.sequence)
            for result in batch.results:
                self.deliveries[result.result_id] = self.deliveries.get(result.result_id, 0) + 1
                if result.monitor_id in self.fenced_monitors:
                    ack.rejected.append(
                        pb.RejectedResult(
                            result_id=result.result_id,
                            reason=pb.RejectedResult.FENCED,
                            message="monitor moved to another agent",
                        )
                    )
                else:
                    self.results.setdefault(result.result_id, result)
            self.acked_sequences.append(batch.sequence)
            self._notify()
            yield ack

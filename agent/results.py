"""From finished checks to acknowledged results: spool first, then batches over the results stream.

The spool is the queue. The sender reads it from a cursor in batches, numbers them, and deletes a
batch's results only when the control plane acknowledges it after commit. A new stream starts its
cursor at zero again, which replays everything unacknowledged; the control plane inserts by result
id, so a replay never duplicates.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

from agent.clock import Clock
from agent.convert import batch_from_payloads, encode_result
from agent.metrics import AgentMetrics
from agent.records import ResultRecord
from agent.spool import Spool
from traxo_protocol.traxo.agent.v1 import agent_pb2 as pb

log = logging.getLogger(__name__)

# A full spool or disk drops results on every flush (ten a second): one warning per this many seconds,
# with the counts since the last one, says so without flooding the log.
DROP_WARNING_INTERVAL_S = 60.0


class ResultStream(Protocol):
    """The bidirectional results call, as the pipeline needs it (grpc.aio's StreamStreamCall fits)."""

    async def write(self, request: pb.ResultBatch) -> None: ...

    async def read(self) -> Any: ...


class StreamClosed(ConnectionError):
    pass


class ResultPipeline:
    def __init__(
        self,
        spool: Spool,
        metrics: AgentMetrics,
        clock: Clock,
        batch_size: int = 500,
        max_batches_in_flight: int = 8,
        flush_interval_s: float = 0.1,
    ) -> None:
        self._spool = spool
        self._metrics = metrics
        self._clock = clock
        self._batch_size = batch_size
        self._max_in_flight = max_batches_in_flight
        self._flush_interval_s = flush_interval_s
        self._pending: list[bytes] = []
        self._pending_event = asyncio.Event()
        self._spooled = asyncio.Event()  # the spool has rows the sender may not have seen
        self._acked = asyncio.Event()  # an ack arrived (for wait_drained)
        self.acks = 0  # batches acknowledged so far (a server whose results renew the lease)
        self._drop_warnings = DropWarnings(clock)

    def submit(self, record: ResultRecord) -> None:
        """Called by the scheduler for every finished check; never blocks."""
        self._pending.append(encode_result(record))
        self._pending_event.set()

    async def run_writer(self) -> None:
        """Moves submitted results to the spool, a transaction per flush interval rather than per result."""
        while True:
            await self._pending_event.wait()
            await asyncio.sleep(self._flush_interval_s)
            await self.flush()

    async def flush(self) -> None:
        self._pending_event.clear()
        pending, self._pending = self._pending, []
        if not pending:
            self._drop_warnings.log_due()
            return
        try:
            dropped = await self._spool.add(pending)
        except Exception as exc:  # a broken spool must not stop the writer: the checks go on
            self._metrics.results_dropped.labels("spool_error").inc(len(pending))
            self._drop_warnings.note(f"the spool refused them ({exc})", len(pending))
            return
        counts = {
            "spool_full": dropped.by_size,
            "too_old": dropped.by_age,
            "disk_full": dropped.by_disk + dropped.unstored,
        }
        for reason, count in counts.items():
            if count:
                self._metrics.results_dropped.labels(reason).inc(count)
        if dropped.by_size or dropped.by_age:
            self._drop_warnings.note("the spool's bounds pushed them out", dropped.by_size + dropped.by_age)
        if dropped.by_disk:
            self._drop_warnings.note("the disk is full: the oldest made room", dropped.by_disk)
        if dropped.unstored:
            self._drop_warnings.note("the disk is full: new results found no room", dropped.unstored)
        self._drop_warnings.log_due()  # a burst's last count, once its interval is over
        self._spooled.set()
        await self.update_spool_metrics()

    async def update_spool_metrics(self) -> None:
        stats = await self._spool.stats()
        self._metrics.spool_results.set(stats.count)
        self._metrics.spool_bytes.set(stats.size_bytes)
        age = 0.0 if stats.oldest_created_at is None else self._clock.wall() - stats.oldest_created_at
        self._metrics.spool_oldest_age.set(max(0.0, age))
        self._metrics.spool_disk_full.set(1 if stats.disk_full else 0)

    async def send_over(self, stream: ResultStream, agent_id: str) -> None:
        """Sends spooled results on one stream until it fails; everything unacknowledged stays spooled."""
        in_flight: dict[int, list[int]] = {}
        window = asyncio.Semaphore(self._max_in_flight)
        async with asyncio.TaskGroup() as group:
            group.create_task(self._read_acks(stream, in_flight, window))
            group.create_task(self._write_batches(stream, agent_id, in_flight, window))

    async def wait_drained(self, timeout_s: float) -> bool:
        """True once the spool is empty (all acknowledged), False if the timeout passed first."""
        try:
            async with asyncio.timeout(timeout_s):
                while (await self._spool.stats()).count:
                    self._acked.clear()
                    await self._acked.wait()
        except TimeoutError:
            return False
        return True

    async def _write_batches(
        self, stream: ResultStream, agent_id: str, in_flight: dict[int, list[int]], window: asyncio.Semaphore
    ) -> None:
        cursor, sequence = 0, 0
        while True:
            self._spooled.clear()  # before reading, so a flush during the read is not missed
            rows = await self._spool.read_after(cursor, self._batch_size)
            if not rows:
                await self._spooled.wait()
                continue
            await window.acquire()
            sequence += 1
            batch = batch_from_payloads(row.payload for row in rows)
            batch.agent_id, batch.sequence = agent_id, sequence
            in_flight[sequence] = [row.seq for row in rows]
            await stream.write(batch)
            self._metrics.results_sent.inc(len(rows))
            cursor = rows[-1].seq

    async def _read_acks(
        self, stream: ResultStream, in_flight: dict[int, list[int]], window: asyncio.Semaphore
    ) -> None:
        while True:
            ack = await stream.read()
            if not isinstance(ack, pb.ResultAck):  # grpc.aio.EOF: the server closed the stream
                raise StreamClosed("the control plane closed the results stream")
            seqs = in_flight.pop(ack.sequence, None)
            if seqs is None:
                log.warning("ack for unknown batch %d ignored", ack.sequence)
                continue
            window.release()
            self.acks += 1
            await self._spool.delete(seqs)
            for rejected in ack.rejected:
                reason = pb.RejectedResult.Reason.Name(rejected.reason).lower()
                self._metrics.results_rejected.labels(reason).inc()
                log.info("result %s rejected (%s): %s", rejected.result_id, reason, rejected.message)
            self._metrics.results_acked.inc(len(seqs) - len(ack.rejected))
            self._acked.set()
            await self.update_spool_metrics()


class DropWarnings:
    """Unsent results dropped, logged as one warning at most every DROP_WARNING_INTERVAL_S per cause:
    the first at once, later ones with the count since, the last of a burst once its interval is
    over (log_due, at every flush) though nothing more was dropped."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._last: dict[str, float] = {}  # cause -> when it was last logged
        self._since: dict[str, int] = {}  # cause -> dropped since then, not yet logged

    def note(self, cause: str, count: int) -> None:
        self._since[cause] = self._since.get(cause, 0) + count
        self.log_due()

    def log_due(self) -> None:
        """Log each cause with drops not logged yet whose interval is over."""
        if not self._since:
            return
        now = self._clock.monotonic()
        for cause in list(self._since):
            last = self._last.get(cause)
            if last is not None and now - last < DROP_WARNING_INTERVAL_S:
                continue
            self._last[cause] = now
            log.warning("dropped %d unsent results: %s", self._since.pop(cause), cause)

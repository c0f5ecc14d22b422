"""The control plane's own Prometheus instruments: one registry per process, counted where things
happen (results stored, AI events committed, agents' batches, assignments, alert deliveries, the
workers' rounds) and read by /metrics (docs/metrics.md names each one).

Module-level, unlike the rest of the code's state: a process has exactly one of each, every layer
counts into them without being handed them, and what they hold is only counts (the settings and
the database stay out). The API is one process (uvicorn without worker processes), so no
multiprocess mode: each replica, and each `traxo worker`, is scraped on its own and Prometheus sums.
"""

from __future__ import annotations

import re
import time
from bisect import bisect_left
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import accumulate

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

REGISTRY = CollectorRegistry(auto_describe=True)
# The process's CPU, memory, file descriptors and garbage collector, as every Python exporter has.
for _collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
    REGISTRY.register(_collector)

# -- HTTP (observability/http.py counts them) -----------------------------------------------------

HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_HTTP_BUCKET_NAMES = [*(floatToGoString(bound) for bound in HTTP_BUCKETS), "+Inf"]


class HttpSeries:
    """One route template and method: answers counted by status, durations by bucket.

    Plain numbers instead of prometheus_client's children, which take a lock per update (2.7 µs a
    request for a counter and a histogram, measured): only the event loop's thread counts requests
    and renders the scrape, so nothing else can see a half-made update.
    """

    __slots__ = ("buckets", "method", "route", "statuses", "sum")

    def __init__(self, route: str, method: str) -> None:
        self.route, self.method = route, method
        self.statuses: dict[int, int] = {}
        self.buckets = [0] * (len(HTTP_BUCKETS) + 1)  # per bucket, not cumulative; the last is +Inf
        self.sum = 0.0

    def observe(self, status: int, seconds: float) -> None:
        statuses = self.statuses
        statuses[status] = statuses.get(status, 0) + 1
        self.buckets[bisect_left(HTTP_BUCKETS, seconds)] += 1
        self.sum += seconds


class HttpRequests(Collector):
    """Every HttpSeries of the process, by route template and method."""

    def __init__(self) -> None:
        self._series: dict[str, dict[str, HttpSeries]] = {}

    def series(self, route: str, method: str) -> HttpSeries:
        by_method = self._series.get(route)
        if by_method is None:
            by_method = self._series[route] = {}
        series = by_method.get(method)
        if series is None:
            series = by_method[method] = HttpSeries(route, method)
        return series

    def collect(self) -> Iterator[CounterMetricFamily | HistogramMetricFamily]:
        requests = CounterMetricFamily(
            "traxo_http_requests",
            "HTTP requests answered, by route template, method and status",
            labels=["route", "method", "status"],
        )
        durations = HistogramMetricFamily(
            "traxo_http_request_duration_seconds",
            "Time from a request's arrival to the end of its answer, by route template and method",
            labels=["route", "method"],
        )
        for by_method in list(self._series.values()):
            for series in list(by_method.values()):
                for status, count in sorted(series.statuses.items()):
                    requests.add_metric([series.route, series.method, str(status)], count)
                cumulative = list(accumulate(series.buckets))
                durations.add_metric(
                    [series.route, series.method],
                    list(zip(_HTTP_BUCKET_NAMES, cumulative, strict=True)),
                    series.sum,
                )
        yield requests
        yield durations

    def describe(self) -> Iterator[CounterMetricFamily]:
        return iter(())


HTTP = HttpRequests()
REGISTRY.register(HTTP)

# -- agents and their results ---------------------------------------------------------------------

CHECK_RESULTS = Counter(
    "traxo_check_results",
    "Check results written by this process (committed), replayed ones already stored (duplicate), "
    "and those whose monitor was gone (orphaned)",
    ["outcome"],
    registry=REGISTRY,
)
_RESULTS_COMMITTED = CHECK_RESULTS.labels("committed")
_RESULTS_DUPLICATE = CHECK_RESULTS.labels("duplicate")
_RESULTS_ORPHANED = CHECK_RESULTS.labels("orphaned")

AGENT_REGISTRATIONS = Counter(
    "traxo_agents_registrations",
    "Agents' registrations with this process, by region",
    ["region"],
    registry=REGISTRY,
)
AGENT_BATCHES = Counter(
    "traxo_agents_result_batches",
    "Agents' result batches, by region and outcome (acked: committed and acknowledged; failed: not "
    "stored, the agent replays it)",
    ["region", "outcome"],
    registry=REGISTRY,
)
AGENT_RESULTS_REJECTED = Counter(
    "traxo_agents_results_rejected",
    "Agents' results refused (invalid, unknown monitor, or fenced off by a newer grant), by region",
    ["region"],
    registry=REGISTRY,
)
AGENT_BATCHES_STORING = Gauge(
    "traxo_agents_result_batches_storing",
    "Agents' result batches being converted and stored by this process now, over all its streams; "
    "at traxo_agents_result_batches_limit, streams stop being read until one is done",
    registry=REGISTRY,
)
AGENT_BATCHES_LIMIT = Gauge(
    "traxo_agents_result_batches_limit",
    "How many agents' result batches this process stores at once (TRAXO_AGENT_RESULTS_MAX_BATCHES)",
    registry=REGISTRY,
)
ASSIGNMENT_CHANGES = Counter(
    "traxo_assignment_changes",
    "Monitors whose agent changed (granted, moved or revoked) in a region's reassignment",
    ["region"],
    registry=REGISTRY,
)


def count_results(*, committed: int, duplicate: int, orphaned: int) -> None:
    """A stored batch's results (results/ingest.py)."""
    _RESULTS_COMMITTED.inc(committed)
    if duplicate:
        _RESULTS_DUPLICATE.inc(duplicate)
    if orphaned:
        _RESULTS_ORPHANED.inc(orphaned)


def count_agent_batch(region: str, *, acked: bool, rejected: int = 0) -> None:
    """An agent's batch handled by the gRPC service: acknowledged (with `rejected` results refused)
    or failed."""
    AGENT_BATCHES.labels(region, "acked" if acked else "failed").inc()
    if rejected:
        AGENT_RESULTS_REJECTED.labels(region).inc(rejected)


# -- AI ingest ------------------------------------------------------------------------------------

AI_EVENTS = Counter(
    "traxo_ai_events_ingested", "LLM events committed by the AI ingest's group commits", registry=REGISTRY
)
AI_GROUP_FAILURES = Counter(
    "traxo_ai_ingest_failed_groups",
    "AI ingest group commits that failed (their requests were answered 503 and may be sent again)",
    registry=REGISTRY,
)

# -- alert delivery -------------------------------------------------------------------------------

ALERT_ATTEMPTS = Counter(
    "traxo_alert_delivery_attempts",
    "Alert sends attempted, by channel type and outcome (delivered or failed: retried until it gives up)",
    ["channel_type", "outcome"],
    registry=REGISTRY,
)
ALERT_GIVEN_UP = Counter(
    "traxo_alert_deliveries_given_up",
    "Alert deliveries marked failed for good (not retryable, or retried until alert_delivery_give_up_hours)",
    ["channel_type"],
    registry=REGISTRY,
)


def count_alert_attempt(channel_type: str, *, delivered: bool) -> None:
    ALERT_ATTEMPTS.labels(channel_type, "delivered" if delivered else "failed").inc()


# -- background workers ---------------------------------------------------------------------------

_PER_PROCESS_SUFFIX = re.compile(r"-w_[a-z0-9]+$")  # jobs that run on every replica (workers/jobs.py)


def job_label(name: str) -> str:
    """A job's name without its per-process suffix (`alerts-w_…` is `alerts`): series that outlive
    a restart."""
    return _PER_PROCESS_SUFFIX.sub("", name)


@dataclass(slots=True)
class JobRound:
    """One round of a periodic job: the runner sets `ran` (False: another replica held the lease)."""

    ran: bool = False


@dataclass(slots=True)
class _JobState:
    interval: float
    last_end: float | None = None  # monotonic: when the previous round ended (for the lag)
    running_since: float | None = None


class JobMetrics(Collector):
    """Rounds of the workers' periodic jobs. Clocks are parameters: tests hand in their own."""

    def __init__(
        self,
        registry: CollectorRegistry | None,
        *,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._wall, self._monotonic = wall, monotonic
        self._jobs: dict[str, _JobState] = {}
        self.runs = Counter(
            "traxo_worker_job_runs",
            "Rounds of a periodic job, by outcome (ok, failed, or skipped: another replica held its lease)",
            ["job", "outcome"],
            registry=registry,
        )
        self.duration = Histogram(
            "traxo_worker_job_duration_seconds",
            "How long a round of a periodic job took (rounds that ran)",
            ["job"],
            buckets=(0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300),
            registry=registry,
        )
        self.last_run = Gauge(
            "traxo_worker_job_last_run_timestamp_seconds",
            "When a periodic job's latest round that ran here ended (Unix time), ok or failed",
            ["job"],
            registry=registry,
        )
        self.last_success = Gauge(
            "traxo_worker_job_last_success_timestamp_seconds",
            "When a periodic job's latest successful round here ended (Unix time)",
            ["job"],
            registry=registry,
        )
        self.lag = Gauge(
            "traxo_worker_job_lag_seconds",
            "How late a periodic job's latest round started after it was due (its interval after the "
            "previous round ended): the event loop or the database keeping it waiting",
            ["job"],
            registry=registry,
        )
        if registry is not None:
            registry.register(self)

    @contextmanager
    def round(self, name: str, interval_seconds: float) -> Iterator[JobRound]:
        """Around one round of the job: counts it by how it ended (an exception is a failure and
        goes on; cancellation is neither)."""
        job = job_label(name)
        state = self._jobs.get(job)
        if state is None:
            state = self._jobs[job] = _JobState(interval_seconds)
        started = self._monotonic()
        if state.last_end is not None:
            self.lag.labels(job).set(max(0.0, started - state.last_end - state.interval))
        state.running_since = started
        this_round = JobRound()
        outcome = "failed"
        try:
            yield this_round
            outcome = "ok" if this_round.ran else "skipped"
        except BaseException as exc:
            if not isinstance(exc, Exception):
                outcome = "cancelled"
            raise
        finally:
            ended = self._monotonic()
            state.last_end, state.running_since = ended, None
            if outcome != "cancelled":
                self.runs.labels(job, outcome).inc()
            if outcome in ("ok", "failed"):
                self.duration.labels(job).observe(ended - started)
                self.last_run.labels(job).set(self._wall())
                if outcome == "ok":
                    self.last_success.labels(job).set(self._wall())

    def collect(self) -> Iterator[GaugeMetricFamily]:
        running = GaugeMetricFamily(
            "traxo_worker_job_running_seconds",
            "How long a periodic job's current round has been running here (0 between rounds); a job "
            "that loops forever (alerts) is always running",
            labels=["job"],
        )
        now = self._monotonic()
        for job, state in sorted(self._jobs.items()):
            running.add_metric([job], 0.0 if state.running_since is None else now - state.running_since)
        yield running

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())


JOBS = JobMetrics(REGISTRY)

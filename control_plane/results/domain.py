"""What the results path is about, whatever stores it: a check result in, its measures, and the
deltas it adds to its hour's and day's rollups."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from control_plane.domain import histogram

PHASES = ("dns", "tcp", "tls", "ttfb", "download", "total")

LastCheck = tuple[str, float | None, datetime]  # status, response time, checked at
RollupKey = tuple[str, str, str, datetime]  # monitor id, region, granularity, bucket start


@dataclass(frozen=True, slots=True)
class ResultIn:
    """A validated check result, as the agent protocol's conversion module produces it."""

    id: str
    monitor_id: str
    region: str
    status: str  # UP | DOWN
    checked_at: datetime
    response_time: float | None = None
    status_code: int | None = None
    error_kind: str | None = None
    error_message: str | None = None
    dns: float | None = None
    tcp: float | None = None
    tls: float | None = None
    ttfb: float | None = None
    download: float | None = None
    total: float | None = None
    size: int | None = None
    details: dict[str, Any] | None = None
    scheduled_at: datetime | None = None
    agent_id: str | None = None
    screenshot_png: bytes | None = None

    def measures(self) -> dict[str, float]:
        """The timed measures present in this result; `total` falls back to the response time."""
        values = {phase: getattr(self, phase) for phase in PHASES}
        if values["total"] is None:
            values["total"] = self.response_time
        return {name: float(value) for name, value in values.items() if value is not None}


def measure_columns(r: ResultIn) -> dict[str, Any]:
    """A result's measures by column name, the same in check_results and rollup_backlog."""
    return {
        "response_time": r.response_time,
        "dns_ms": r.dns,
        "tcp_ms": r.tcp,
        "tls_ms": r.tls,
        "ttfb_ms": r.ttfb,
        "download_ms": r.download,
        "total_ms": r.total,
        "size_bytes": r.size,
    }


def bucket_start(moment: datetime, granularity: str) -> datetime:
    if granularity == "hour":
        return moment.replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


@dataclass(slots=True)
class RollupDelta:
    """What a set of results adds to one rollup row."""

    count: int = 0
    up_count: int = 0
    sums: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    histograms: dict[str, histogram.Histogram] = field(default_factory=dict)

    def add(self, up: bool, measured: list[tuple[str, float, str]], size: int | None) -> None:
        """One result: its timed measures as (name, value, histogram bucket), and its size."""
        self.count += 1
        self.up_count += up
        sums, counts, histograms = self.sums, self.counts, self.histograms
        for name, value, bucket in measured:
            sums[name] = sums.get(name, 0.0) + value
            counts[name] = counts.get(name, 0) + 1
            buckets = histograms.get(name)
            if buckets is None:
                buckets = histograms[name] = {}
            buckets[bucket] = buckets.get(bucket, 0) + 1
        if size is not None:
            sums["size"] = sums.get("size", 0.0) + size
            counts["size"] = counts.get("size", 0) + 1

    def add_to(
        self, sums: dict[str, float], counts: dict[str, int], histograms: dict[str, histogram.Histogram]
    ) -> None:
        """Adds these results' sums, counts and histograms to a stored rollup's (in place)."""
        for name, value in self.sums.items():
            sums[name] = sums.get(name, 0.0) + value
        for name, value in self.counts.items():
            counts[name] = counts.get(name, 0) + value
        for name, buckets in self.histograms.items():
            histogram.merge_into(histograms.setdefault(name, {}), buckets)


RollupDeltas = dict[RollupKey, RollupDelta]


def rollup_deltas(results: Iterable[ResultIn]) -> RollupDeltas:
    deltas: RollupDeltas = {}
    for result in results:
        # Measured once, added to the hour's and the day's rollup.
        measured = [
            (name, value, str(histogram.bucket_of(value))) for name, value in result.measures().items()
        ]
        up = result.status == "UP"
        hour = bucket_start(result.checked_at, "hour")
        for granularity, start in (("hour", hour), ("day", hour.replace(hour=0))):
            key = (result.monitor_id, result.region, granularity, start)
            delta = deltas.get(key)
            if delta is None:
                delta = deltas[key] = RollupDelta()
            delta.add(up, measured, result.size)
    return deltas


def newest_per_monitor(results: Iterable[ResultIn]) -> dict[str, LastCheck]:
    newest: dict[str, LastCheck] = {}
    for result in results:
        current = newest.get(result.monitor_id)
        if current is None or result.checked_at > current[2]:
            newest[result.monitor_id] = (result.status, result.response_time, result.checked_at)
    return newest

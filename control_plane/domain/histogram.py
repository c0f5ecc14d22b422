"""Sparse log-scale histograms: mergeable summaries that answer percentiles within ~5%.

A value v (milliseconds) falls in bucket k when THRESHOLDS[k-1] <= v < THRESHOLDS[k], the
thresholds being FLOOR * GROWTH**j; a bucket's representative value is its geometric middle, so
any percentile read back is off by at most half a bucket (about ±5% with GROWTH 1.1). Buckets come
from a table, not from log(): PostgreSQL's rollup fold uses the same table (width_bucket), so the
database's and Python's buckets agree whatever C library each runs on. Keys are strings because
the histograms live in JSON.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping

FLOOR = 0.01  # ms; anything below lands in bucket 0
GROWTH = 1.1
# Up to ~3.5e8 ms (four days; no timing of one check is longer than a day); above: one last bucket.
THRESHOLDS: tuple[float, ...] = tuple(FLOOR * GROWTH**j for j in range(256))

Histogram = dict[str, int]


def bucket_of(value: float) -> int:
    """How many thresholds are at or below `value` (PostgreSQL's width_bucket with an array)."""
    return bisect.bisect_right(THRESHOLDS, value)


def representative(bucket: int) -> float:
    if bucket == 0:
        return FLOOR
    return FLOOR * GROWTH ** (bucket - 0.5)


def add(histogram: Histogram, value: float, count: int = 1) -> None:
    key = str(bucket_of(value))
    histogram[key] = histogram.get(key, 0) + count


def merge_into(target: Histogram, other: Mapping[str, int]) -> None:
    for key, count in other.items():
        target[key] = target.get(key, 0) + count


def merged(histograms: Iterable[Mapping[str, int]]) -> Histogram:
    total: Histogram = {}
    for histogram in histograms:
        merge_into(total, histogram)
    return total


def quantile(histogram: Mapping[str, int], q: float) -> float | None:
    """The q-quantile (0 < q <= 1), or None for an empty histogram."""
    total = sum(histogram.values())
    if total == 0:
        return None
    rank = math.ceil(q * total)
    seen = 0
    for key in sorted(histogram, key=int):
        seen += histogram[key]
        if seen >= rank:
            return representative(int(key))
    return representative(max(int(k) for k in histogram))

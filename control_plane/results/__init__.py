"""Check results: the domain (domain.py) at the bottom, one store interface with a SQLite and a
PostgreSQL implementation (store.py), and above it ingest, the rollup fold, retention and the
lastCheck writer. Import from here; the modules are the package's own business."""

from control_plane.results.daily import DayCounts, daily_counts
from control_plane.results.domain import PHASES, LastCheck, ResultIn, bucket_start
from control_plane.results.fold import fold_backlog
from control_plane.results.ingest import (
    AfterCommit,
    RecordOutcome,
    ResultsIngest,
    record_results,
)
from control_plane.results.last_checks import LastCheckWriter, write_last_checks
from control_plane.results.retention import (
    delete_expired,
    delete_results_of,
    exclude_result_writers,
    orphaned_monitor_ids,
)
from control_plane.results.store import ResultsStore, results_store

__all__ = [
    "PHASES",
    "AfterCommit",
    "DayCounts",
    "LastCheck",
    "LastCheckWriter",
    "RecordOutcome",
    "ResultIn",
    "ResultsIngest",
    "ResultsStore",
    "bucket_start",
    "daily_counts",
    "delete_expired",
    "delete_results_of",
    "exclude_result_writers",
    "fold_backlog",
    "orphaned_monitor_ids",
    "record_results",
    "results_store",
    "write_last_checks",
]

"""The agent's Prometheus metrics, on a registry of their own (one per Agent, none at import time)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class AgentMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.connected = Gauge(
            "traxo_agent_connected", "1 while registered with the control plane", registry=r
        )
        self.reconnects = Counter("traxo_agent_reconnects", "Connection attempts after a failure", registry=r)
        self.renewals_failed = Counter(
            "traxo_agent_lease_renewals_failed",
            "Lease renewals that failed or timed out (tried again at the next one)",
            registry=r,
        )
        self.assignments = Gauge("traxo_agent_assignments", "Monitors assigned to this agent", registry=r)
        self.assignment_version = Gauge(
            "traxo_agent_assignment_version", "Assignment version held", registry=r
        )
        self.checks = Counter(
            "traxo_agent_checks", "Checks run, by monitor type and status", ["type", "status"], registry=r
        )
        self.check_duration = Histogram(
            "traxo_agent_check_duration_seconds",
            "Wall time of a check",
            ["type"],
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.schedule_lag = Histogram(
            "traxo_agent_schedule_lag_seconds",
            "How late a check started after it was due",
            buckets=_LAG_BUCKETS,
            registry=r,
        )
        self.skipped = Counter(
            "traxo_agent_skipped_runs",
            "Runs skipped because the previous run was still going",
            ["type"],
            registry=r,
        )
        self.spool_results = Gauge(
            "traxo_agent_spool_results", "Unacknowledged results in the spool", registry=r
        )
        self.spool_bytes = Gauge("traxo_agent_spool_bytes", "Bytes of unacknowledged results", registry=r)
        self.spool_oldest_age = Gauge(
            "traxo_agent_spool_oldest_age_seconds", "Age of the oldest unacknowledged result", registry=r
        )
        self.spool_disk_full = Gauge(
            "traxo_agent_spool_disk_full",
            "1 while a full disk, not the size bound, limits the spool (the oldest results make room)",
            registry=r,
        )
        self.results_sent = Counter(
            "traxo_agent_results_sent", "Results sent (replays count again)", registry=r
        )
        self.results_acked = Counter(
            "traxo_agent_results_acked", "Results the control plane committed", registry=r
        )
        self.results_rejected = Counter(
            "traxo_agent_results_rejected", "Results the control plane refused", ["reason"], registry=r
        )
        self.results_dropped = Counter(
            "traxo_agent_results_dropped",
            "Results dropped unsent: spool_full, too_old (the spool's bounds), disk_full, spool_error",
            ["reason"],
            registry=r,
        )
        self.clock_skew = Gauge(
            "traxo_agent_clock_skew_seconds",
            "Local clock minus the control plane's at registration",
            registry=r,
        )

"""The agent's domain objects between the protocol edge and the scheduler."""

from __future__ import annotations

from dataclasses import dataclass

from agent.checks.base import CheckResult, CheckSpec


@dataclass(frozen=True, slots=True)
class Assignment:
    """A monitor this agent must run, and the fencing epoch of the grant."""

    spec: CheckSpec
    epoch: int


@dataclass(frozen=True, slots=True)
class ResultRecord:
    """One finished check, ready to leave the process. Times are unix seconds."""

    result_id: str
    monitor_id: str
    monitor_type: str
    epoch: int
    region: str
    scheduled_at: float
    started_at: float
    finished_at: float
    result: CheckResult

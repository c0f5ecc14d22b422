"""What each plan allows (README, Self-hosting: plans)."""

from __future__ import annotations

from dataclasses import dataclass

from control_plane.settings import Plan


@dataclass(frozen=True, slots=True)
class PlanLimits:
    requests_per_minute: int
    monitors: int | None  # None: unlimited
    min_interval_seconds: int
    ai_events_per_day: int
    premium_features: bool  # BROWSER monitors, hideBranding, customCss


PLAN_LIMITS: dict[Plan, PlanLimits] = {
    Plan.FREE: PlanLimits(60, 5, 300, 1_000, False),
    Plan.PRO: PlanLimits(300, 50, 60, 10_000, False),
    Plan.BUSINESS: PlanLimits(1_000, 200, 30, 100_000, True),
    Plan.ENTERPRISE: PlanLimits(5_000, None, 15, 1_000_000, True),
}


def limits_for(plan: str | None) -> PlanLimits:
    """Limits of a plan name; a caller without an organization counts as FREE."""
    return PLAN_LIMITS[Plan(plan)] if plan else PLAN_LIMITS[Plan.FREE]

"""A monitor judged after its regions' new results: down or up, flapping, a dependency down, no
data any more. Writes the incident changes (changes.py) and says what the monitor's state becomes;
the engine compares-and-sets it. Certificates and DNS answers are signals.py's."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.core.id_sets import among
from control_plane.domain.incident_rules import Rules, rules_of
from control_plane.incidents import changes
from control_plane.incidents.changes import OpenIncident
from control_plane.incidents.fold import Observation, Region, humanize_seconds, recent_transitions, verdict
from control_plane.incidents.monitors import Change, MonitorRow, open_incident_of, open_incidents
from control_plane.incidents.signals import Signals
from control_plane.maintenance import monitors_in_maintenance
from control_plane.models import CheckResult, MonitorState
from control_plane.models.incidents import KIND_DOWN, KIND_NO_DATA

FLAP_WINDOW = timedelta(hours=1)
RATE_MIN_CHECKS = 3  # the failure-rate rule needs at least this many checks in its window

__all__ = ["Change", "MonitorJudge", "MonitorRow", "open_incident_of", "open_incidents"]


class MonitorJudge:
    def __init__(self, session: AsyncSession, now: datetime) -> None:
        self._session = session
        self._now = now
        self._open: dict[tuple[str, str], OpenIncident] = {}
        self._down: set[str] = set()  # dependencies down (as read, and as judged in this batch)
        self._org_of: dict[str, str] = {}
        self._signals = Signals(session, now, self._open, self._in_maintenance)

    def rules(self, monitor: MonitorRow) -> Rules:
        return rules_of(monitor.config, len(monitor.judged_regions), monitor_type=monitor.type)

    async def prepare(self, monitors: Iterable[MonitorRow], states: dict[str, MonitorState]) -> None:
        """One read each for the batch: open incidents, and the states of dependencies."""
        monitors = list(monitors)
        self._open.clear()  # in place: the signals judge shares it
        self._open.update(await open_incidents(self._session, [m.id for m in monitors]))
        self._down = {m for m, s in states.items() if s.down}
        self._org_of = {m: s.org_id for m, s in states.items()}
        dependencies = {d for m in monitors for d in self.rules(m).depends_on} - set(states)
        for condition in among(self._session, MonitorState.monitor_id, sorted(dependencies)):
            rows = await self._session.execute(
                select(MonitorState.monitor_id, MonitorState.org_id, MonitorState.down).where(condition)
            )
            for monitor_id, org_id, down in rows:
                self._org_of[monitor_id] = org_id
                if down:
                    self._down.add(monitor_id)

    async def _in_maintenance(self, monitor: MonitorRow, at: datetime) -> bool:
        return monitor.id in await monitors_in_maintenance(self._session, [(monitor.id, monitor.org_id)], at)

    def _dependency_down(self, monitor: MonitorRow, rules: Rules) -> str | None:
        for dependency in rules.depends_on:
            if (
                dependency != monitor.id
                and dependency in self._down
                and self._org_of.get(dependency) == monitor.org_id
            ):
                return dependency
        return None

    async def _failure_rate(
        self, monitor: MonitorRow, rules: Rules, at: datetime, *, down: bool
    ) -> str | None:
        """The failure-rate rule's cause when it holds at `at`, else None. A monitor it holds down
        stays down until the rate falls under half the threshold: a rate hovering at the threshold
        must not flap."""
        if rules.failure_percent is None or rules.failure_window_minutes is None:
            return None
        threshold = rules.failure_percent / 2 if down else rules.failure_percent
        since = at - timedelta(minutes=rules.failure_window_minutes)
        total, failed = (
            await self._session.execute(
                select(
                    func.count(), func.coalesce(func.sum(case((CheckResult.status == "DOWN", 1), else_=0)), 0)
                ).where(
                    CheckResult.monitor_id == monitor.id,
                    CheckResult.checked_at > since,
                    CheckResult.checked_at <= at,
                )
            )
        ).one()
        if total < max(RATE_MIN_CHECKS, rules.confirmations) or 100.0 * failed / total < threshold:
            return None
        window = rules.failure_window_minutes
        return (
            f"{100.0 * failed / total:.0f}% of checks failed in the last {window} minutes "
            f"({failed} of {total}; threshold {rules.failure_percent:g}%)"
        )

    async def signals(
        self, monitor: MonitorRow, state: MonitorState, observations: Sequence[Observation]
    ) -> Change:
        """SSL expiry and DNS answers from the batch's newest such results."""
        change = Change()
        await self._signals.apply(monitor, state, observations, change)
        return change

    async def judge(
        self,
        monitor: MonitorRow,
        down: bool,
        transitions: list[str],
        regions: dict[str, Region],
        at: datetime,
    ) -> Change:
        """The monitor as of `at`, given it was `down` before: the change it makes, written."""
        change = Change(down=down, transitions=list(transitions))
        await self._no_data_back(monitor, regions, at, change)
        rules = self.rules(monitor)
        rate_cause = await self._failure_rate(monitor, rules, at, down=down)
        now_down = verdict(
            monitor.judged_regions, regions, rules, rate_failing=rate_cause is not None, rate_cause=rate_cause
        )
        open_down = self._open.get((monitor.id, KIND_DOWN))
        ref = monitor.ref
        if now_down.down and not down:
            self._down.add(monitor.id)
            change.state_changed, change.down = True, True
            change.transitions = [
                *recent_transitions(change.transitions, at, window=FLAP_WINDOW),
                at.isoformat(),
            ]
            cause = now_down.cause or "Check failed"
            if open_down is not None:  # kept open while flapping
                await changes.note(self._session, ref, open_down, at=at, message=f"Down again: {cause}")
                await changes.widen_regions(self._session, open_down, now_down.failing_regions)
            else:
                started = now_down.started_at or at
                self._open[(monitor.id, KIND_DOWN)] = OpenIncident(
                    await changes.open_incident(
                        self._session,
                        ref,
                        kind=KIND_DOWN,
                        started_at=started,
                        cause=cause,
                        regions=now_down.failing_regions,
                        suppressed_by=self._dependency_down(monitor, rules),
                        in_maintenance=await self._in_maintenance(monitor, at),
                        now=self._now,
                    ),
                    KIND_DOWN,
                    started,
                    now_down.failing_regions,
                    False,
                    None,
                    False,
                )
                change.opened += 1
        elif now_down.down and open_down is not None:
            await changes.widen_regions(self._session, open_down, now_down.failing_regions)
        elif not now_down.down and down:
            self._down.discard(monitor.id)
            change.state_changed, change.down = True, False
            change.transitions = recent_transitions(change.transitions, at, window=FLAP_WINDOW)
            if open_down is not None:
                await self._recover(monitor, rules, open_down, at, len(change.transitions), change)
        return change

    async def _recover(
        self,
        monitor: MonitorRow,
        rules: Rules,
        incident: OpenIncident,
        at: datetime,
        downs: int,
        change: Change,
    ) -> None:
        ref = monitor.ref
        in_maintenance = await self._in_maintenance(monitor, at)
        if downs > rules.flap_threshold:
            if not incident.flapping:
                await changes.mark_flapping(
                    self._session,
                    ref,
                    incident,
                    at=at,
                    transitions=downs,
                    in_maintenance=in_maintenance,
                    now=self._now,
                )
            else:
                await changes.note(self._session, ref, incident, at=at, message="Up again (flapping)")
            return
        duration = max(0.0, (at - incident.started_at).total_seconds())
        if await changes.resolve_incident(
            self._session,
            ref,
            incident,
            at=at,
            message=f"Recovered after {humanize_seconds(duration)}",
            in_maintenance=in_maintenance,
            now=self._now,
        ):
            change.resolved += 1
        self._open.pop((monitor.id, KIND_DOWN), None)

    async def _no_data_back(
        self, monitor: MonitorRow, regions: dict[str, Region], at: datetime, change: Change
    ) -> None:
        incident = self._open.get((monitor.id, KIND_NO_DATA))
        if incident is None or any(regions.get(r, Region()).no_data for r in monitor.judged_regions):
            return
        if await changes.resolve_incident(
            self._session,
            monitor.ref,
            incident,
            at=at,
            message=f"Checks arrive again from {', '.join(incident.regions) or 'every region'}",
            in_maintenance=await self._in_maintenance(monitor, at),
            now=self._now,
        ):
            change.resolved += 1
        self._open.pop((monitor.id, KIND_NO_DATA), None)

"""Incidents of their own kind, from what checks report beside up or down: a certificate inside
its expiry threshold (raised once per certificate, resolved when renewed) and DNS answers that
changed (a point event)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.incidents import changes
from control_plane.incidents.changes import OpenIncident
from control_plane.incidents.fold import Observation
from control_plane.incidents.monitors import Change, MonitorRow
from control_plane.models import MonitorState
from control_plane.models.incidents import KIND_DNS_CHANGE, KIND_SSL_EXPIRY


class Signals:
    """`open_incidents` is the judge's (monitor id, kind) -> open incident, kept in step here."""

    def __init__(
        self,
        session: AsyncSession,
        now: datetime,
        open_incidents: dict[tuple[str, str], OpenIncident],
        in_maintenance: Callable[[MonitorRow, datetime], Awaitable[bool]],
    ) -> None:
        self._session = session
        self._now = now
        self._open = open_incidents
        self._in_maintenance = in_maintenance

    async def apply(
        self, monitor: MonitorRow, state: MonitorState, observations: Sequence[Observation], change: Change
    ) -> None:
        """SSL expiry and DNS answers: incidents of their own kind, raised once, not per check."""
        newest = sorted((o for o in observations if o.signal), key=lambda o: o.at)
        ssl = next((o for o in reversed(newest) if o.signal and "expiring" in o.signal), None)
        if ssl is not None and ssl.signal is not None:
            await self._ssl(monitor, state, ssl, ssl.signal, change)
        if not monitor.config.get("expectedValues"):
            dns = next((o for o in reversed(newest) if o.up and o.signal and "answers" in o.signal), None)
            if dns is not None and dns.signal is not None:
                await self._dns(monitor, state, dns, list(dns.signal["answers"]), change)  # type: ignore[call-overload]

    async def _ssl(
        self,
        monitor: MonitorRow,
        state: MonitorState,
        obs: Observation,
        signal: dict[str, Any],
        change: Change,
    ) -> None:
        incident = self._open.get((monitor.id, KIND_SSL_EXPIRY))
        not_after = str(signal.get("notAfter") or "")
        if signal.get("expiring") and incident is None and state.ssl_expiry_noted != not_after:
            message = str(signal.get("message") or "certificate expires soon")
            incident_id = await changes.open_incident(
                self._session,
                monitor.ref,
                kind=KIND_SSL_EXPIRY,
                started_at=obs.at,
                cause=message[:1].upper() + message[1:],
                regions=(obs.region,),
                suppressed_by=None,
                in_maintenance=await self._in_maintenance(monitor, obs.at),
                now=self._now,
            )
            self._open[(monitor.id, KIND_SSL_EXPIRY)] = OpenIncident(
                incident_id, KIND_SSL_EXPIRY, obs.at, (obs.region,), False, None, False
            )
            await self._set_state(monitor.id, ssl_expiry_noted=not_after)
            change.opened += 1
        elif not signal.get("expiring") and incident is not None and obs.up:
            if await changes.resolve_incident(
                self._session,
                monitor.ref,
                incident,
                at=obs.at,
                message=f"Certificate renewed: valid until {not_after or 'later'}",
                in_maintenance=await self._in_maintenance(monitor, obs.at),
                now=self._now,
            ):
                change.resolved += 1
            self._open.pop((monitor.id, KIND_SSL_EXPIRY), None)

    async def _dns(
        self, monitor: MonitorRow, state: MonitorState, obs: Observation, answers: list[str], change: Change
    ) -> None:
        previous = state.dns_answers
        if previous == answers:
            return
        await self._set_state(monitor.id, dns_answers=answers)
        if previous is None:
            return  # the first answers seen: nothing changed
        cause = (
            f"DNS answers for {monitor.url} changed: {', '.join(previous) or '(none)'} → "
            f"{', '.join(answers) or '(none)'}"
        )
        await changes.open_incident(
            self._session,
            monitor.ref,
            kind=KIND_DNS_CHANGE,
            started_at=obs.at,
            cause=cause,
            regions=(obs.region,),
            suppressed_by=None,
            in_maintenance=await self._in_maintenance(monitor, obs.at),
            now=self._now,
            resolve_at_once=True,
        )
        change.opened += 1

    async def _set_state(self, monitor_id: str, **values: Any) -> None:
        """Columns of the monitor's state outside its up/down (held under this transaction's lock)."""
        await self._session.execute(
            update(MonitorState)
            .where(MonitorState.monitor_id == monitor_id)
            .values(**values)
            .execution_options(synchronize_session=False)
        )

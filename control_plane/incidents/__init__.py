"""The incident engine: stored results judged per monitor and region, incidents opened and
resolved with their timeline and outbox events (engine.py), and its periodic sweep (sweep.py)."""

from control_plane.incidents.engine import Evaluated, IncidentEngine
from control_plane.incidents.queue import backlog_row

__all__ = ["Evaluated", "IncidentEngine", "backlog_row"]

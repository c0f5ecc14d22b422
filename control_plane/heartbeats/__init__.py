"""Heartbeats: jobs that ping Traxo (pings.py), when each ping is due (schedule.py), and the sweep
that reports late heartbeats and overrunning runs (deadlines.py).

This module holds only what the rest of the control plane reads of heartbeats without importing
the results path (the incident engine runs inside that path): the region their results carry,
defined with the incident rules that judge it. Call `pings.record_ping` and
`deadlines.sweep_heartbeats` from their modules.
"""

from control_plane.domain.incident_rules import HEARTBEAT_REGION

__all__ = ["HEARTBEAT_REGION"]

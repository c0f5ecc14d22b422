"""Maintenance windows: their schedule (windows.py) and their CRUD (service.py)."""

from control_plane.maintenance.windows import maintenance_intervals, monitors_in_maintenance

__all__ = ["maintenance_intervals", "monitors_in_maintenance"]

"""Traxo agent: dials out to the control plane, runs assigned checks, streams results back."""

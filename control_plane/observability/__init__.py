"""What the control plane tells its operators: logs (and metrics)."""

"""Monitoring rules without I/O: monitor targets and config, plan limits, latency histograms."""

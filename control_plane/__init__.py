"""Traxo control plane: the REST API, background workers and the `traxo` command."""

"""The public REST API (FastAPI): routes are thin, services hold the logic."""

"""POST /api/ai/ingest/{monitorId}: LLM events from applications. Public (the monitor id routes
it), CORS for browsers."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/ai", tags=["ai ingest"])

"""An LLM monitor's usage (from its hourly rollups) and its events."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/monitors", tags=["ai monitoring"])

"""An LLM monitor's cost alert: its daily and monthly budgets and who is mailed."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/monitors", tags=["ai monitoring"])

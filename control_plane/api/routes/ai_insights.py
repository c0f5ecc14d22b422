"""An LLM monitor's insights: what the insights worker found in its usage, and dismissing them."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/monitors", tags=["ai monitoring"])

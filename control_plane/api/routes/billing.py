"""/api/billing: plan and usage, RevenueCat checkout and portal, and RevenueCat's webhook."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/billing", tags=["billing"])

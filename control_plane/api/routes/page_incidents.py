"""/api/status-pages/{slug}/incidents: incidents declared by hand on a page, their timeline and
post-mortem."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/status-pages", tags=["status pages"])

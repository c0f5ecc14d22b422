"""/api/status-pages: an organization's status pages (key), a page's public view (none when the
page is public), and its custom domain's verification."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/status-pages", tags=["status pages"])

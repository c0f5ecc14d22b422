"""The status page as HTML: /status/{slug}, and / on a page's verified custom domain."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["status page html"], include_in_schema=False)

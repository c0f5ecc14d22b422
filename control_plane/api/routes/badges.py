"""Badges (/badge/{monitorId}/...: SVG and shields.io JSON) of monitors that opted in, and status
pages' RSS and Atom feeds."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["badges and feeds"])

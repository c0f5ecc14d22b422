"""POST /api/ai/otlp/{monitorId}/v1/traces: OpenTelemetry GenAI spans (OTLP/HTTP, protobuf or
JSON) as LLM events."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/ai/otlp", tags=["ai ingest"])

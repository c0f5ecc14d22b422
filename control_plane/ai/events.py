"""An AI event as the ingest takes it, from the JSON API or from an OTLP span, validated."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from control_plane.models.ai import EVENT_ERROR, EVENT_SUCCESS, SOURCE_API


@dataclass(frozen=True, slots=True)
class AiEventIn:
    """One LLM call. Token counts follow the providers' own reports: `cached_tokens` are part of
    `prompt_tokens` (read from the provider's prompt cache), `reasoning_tokens` part of
    `completion_tokens`."""

    provider: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    latency_ms: float
    total_tokens: int | None = None  # None: prompt + completion
    status_code: int | None = None
    error: str | None = None
    prompt_hash: str | None = None
    metadata: dict[str, Any] | None = None
    rag_docs_retrieved: int | None = None
    rag_avg_relevance: float | None = None
    rag_retrieval_ms: float | None = None
    rag_context_tokens: int | None = None
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None
    event_id: str | None = None  # the client's: a retry with the same one is stored once
    source: str = SOURCE_API

    @property
    def tokens(self) -> int:
        return (
            self.total_tokens
            if self.total_tokens is not None
            else self.prompt_tokens + self.completion_tokens
        )

    @property
    def status(self) -> str:
        """An event failed when it says so (an error message) or its provider answered 4xx/5xx."""
        failed = self.error is not None or (self.status_code is not None and self.status_code >= 400)
        return EVENT_ERROR if failed else EVENT_SUCCESS

    @property
    def has_rag(self) -> bool:
        return any(
            value is not None
            for value in (
                self.rag_docs_retrieved,
                self.rag_avg_relevance,
                self.rag_retrieval_ms,
                self.rag_context_tokens,
            )
        )

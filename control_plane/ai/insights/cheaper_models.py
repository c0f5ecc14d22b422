"""Premium models and the same provider's cheaper model to suggest for short calls: a small mapping
maintained by hand, on the price data's model ids, that only ever names a model with prices."""

from __future__ import annotations

import re
from datetime import datetime

from control_plane.ai.pricing import price_of

# Premium model (the price data's id) -> the same provider's cheaper model. Only pairs that both
# have prices are ever suggested; Anthropic's versions without a smaller sibling fall back to the
# current one.
_CHEAPER: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), target)
    for pattern, target in (
        (r"(?:chatgpt-)?gpt-4o(?:-\d{4}-\d{2}-\d{2}|-latest)?", "gpt-4o-mini"),
        (r"gpt-4(?:-turbo)?", "gpt-4o-mini"),
        (r"gpt-4\.1", "gpt-4.1-mini"),
        (r"gpt-5", "gpt-5-mini"),
        (r"o1|o3", "o4-mini"),
        (r"claude-opus-(\d+(?:-\d+)?)", r"claude-sonnet-\1"),
        (r"claude-sonnet-(\d+(?:-\d+)?)", r"claude-haiku-\1"),
        (r"claude-3-opus(?:-latest)?", "claude-3-5-sonnet"),
        (r"claude-3-(?:5|7)-sonnet(?:-latest)?", "claude-3-5-haiku-latest"),
        (r"gemini-(.+)-pro(.*)", r"gemini-\1-flash\2"),
    )
)
_FALLBACK = {"claude-sonnet-": "claude-haiku-4-5", "claude-opus-": "claude-sonnet-4-5"}


def cheaper_model(provider: str, model: str, at: datetime) -> str | None:
    """The same provider's cheaper model for a premium one, when both have prices."""
    premium = price_of(provider, model, at)
    if premium is None:
        return None
    for pattern, target in _CHEAPER:
        match = pattern.fullmatch(premium.model_id)
        if match is None:
            continue
        for candidate in (match.expand(target), *_fallbacks(premium.model_id)):
            if candidate and candidate != premium.model_id and price_of(premium.provider_id, candidate, at):
                return candidate
        return None
    return None


def _fallbacks(model_id: str) -> list[str]:
    return [target for prefix, target in _FALLBACK.items() if model_id.startswith(prefix)]

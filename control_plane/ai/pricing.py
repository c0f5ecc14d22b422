"""What an LLM call cost, from genai-prices' price data — shipped inside its wheel, read offline.

Nothing here fetches: genai-prices only downloads newer data when its `UpdatePrices` is started,
which nothing in Traxo does (tests/ai/test_pricing.py prices with the network unreachable). An
upgrade of the package is an upgrade of the prices; each event records `PRICE_VERSION`, the data it
was priced with.

Token counts follow the providers' reports: cached tokens are part of the prompt tokens (priced at
the model's cache-read price when it has one, else as input), reasoning tokens part of the
completion tokens (priced as output: no model in the data prices them apart). A model the data
does not know is unpriced: `None`, never 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import genai_prices
from genai_prices import Usage
from genai_prices.data_snapshot import get_snapshot
from genai_prices.types import ModelPrice

PRICE_VERSION = f"genai-prices {genai_prices.__version__}"

_MISSING = object()
_CACHE_LIMIT = 4096  # (provider, model) pairs remembered; a flood of made-up models cannot grow it


@dataclass(frozen=True, slots=True)
class Price:
    """A model's prices in USD per token (`cache_read` None: cached tokens cost as input)."""

    model_id: str  # the price data's name for it (e.g. claude-sonnet-4-0 for claude-sonnet-4-20250514)
    provider_id: str
    input: float
    output: float
    cache_read: float | None
    exact: ModelPrice | None  # tiered prices: the library computes them (None when flat)

    def cost(self, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0) -> float:
        cached = min(cached_tokens, prompt_tokens)
        if self.exact is not None:
            usage = Usage(
                input_tokens=prompt_tokens, output_tokens=completion_tokens, cache_read_tokens=cached
            )
            return float(self.exact.calc_price(usage)["total_price"])
        cache_rate = self.cache_read if self.cache_read is not None else self.input
        return (prompt_tokens - cached) * self.input + cached * cache_rate + completion_tokens * self.output


_prices: dict[tuple[str, str, int], Any] = {}


def price_of(provider: str, model: str, at: datetime) -> Price | None:
    """The model's prices at `at` (prices change on dated steps: looked up once per hour), or None
    when the data does not know the model. An unknown provider name (a proxy, a gateway) is
    ignored and the model looked up by its name alone."""
    key = (provider.lower(), model.lower(), int(at.timestamp()) // 3600)
    found = _prices.get(key, _MISSING)
    if found is _MISSING:
        found = _look_up(key[0], key[1], at)
        if len(_prices) >= _CACHE_LIMIT:
            _prices.clear()
        _prices[key] = found
    return found  # type: ignore[no-any-return]


def cost_usd(
    provider: str,
    model: str,
    at: datetime,
    *,
    prompt_tokens: int,
    completion_tokens: int,
    cached_tokens: int | None = None,
) -> float | None:
    price = price_of(provider, model, at)
    if price is None:
        return None
    cost = price.cost(prompt_tokens, completion_tokens, cached_tokens or 0)
    # Ten decimals: far below a cent, above float noise (0.000404, not 0.00040399999999999995).
    return round(cost, 10) if math.isfinite(cost) else None


def _look_up(provider: str, model: str, at: datetime) -> Price | None:
    snapshot = get_snapshot()
    try:
        found_provider, info = snapshot.find_provider_model(model, None, provider or None, None)
    except LookupError:
        if not provider:
            return None
        try:  # a provider name the data does not know: the model's name alone
            found_provider, info = snapshot.find_provider_model(model, None, None, None)
        except LookupError:
            return None
    prices = info.get_prices(at)
    rates = {name: getattr(prices, name, None) for name in ("input_mtok", "output_mtok", "cache_read_mtok")}
    flat = all(value is None or isinstance(value, Decimal) for value in rates.values())
    # Tiered token prices, and a price per request, are the library's to compute. Its other units
    # (audio, images, web searches, writing the prompt cache...) are nothing an event reports.
    exact = None if flat and getattr(prices, "requests_kcount", None) is None else prices

    def per_token(value: Decimal | None) -> float:
        return float(value) / 1_000_000 if isinstance(value, Decimal) else 0.0

    return Price(
        model_id=info.id,
        provider_id=found_provider.id,
        input=per_token(rates["input_mtok"]),
        output=per_token(rates["output_mtok"]),
        cache_read=per_token(rates["cache_read_mtok"]) if rates["cache_read_mtok"] is not None else None,
        exact=exact,
    )

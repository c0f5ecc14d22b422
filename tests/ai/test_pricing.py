"""Prices come from genai-prices' data inside its wheel: offline, per model, cached and uncached
tokens, unknown models unpriced."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from genai_prices import Usage, calc_price

from control_plane.ai.pricing import PRICE_VERSION, cost_usd, price_of

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def test_it_prices_known_models_as_the_price_data_does() -> None:
    for provider, model in [
        ("openai", "gpt-4o"),
        ("openai", "gpt-4o-mini"),
        ("anthropic", "claude-sonnet-4-20250514"),
        ("google", "gemini-2.5-pro"),  # tiered prices: computed by the library
    ]:
        expected = calc_price(
            Usage(input_tokens=150, output_tokens=80),
            model,
            provider_id=provider,
            genai_request_timestamp=NOW,
        ).total_price
        assert cost_usd(provider, model, NOW, prompt_tokens=150, completion_tokens=80) == pytest.approx(
            float(expected), rel=1e-9
        ), model


def test_it_prices_cached_tokens_at_the_cache_read_price() -> None:
    price = price_of("openai", "gpt-4o", NOW)
    assert price is not None and price.cache_read is not None
    assert price.cache_read < price.input
    plain = cost_usd("openai", "gpt-4o", NOW, prompt_tokens=1000, completion_tokens=0)
    cached = cost_usd("openai", "gpt-4o", NOW, prompt_tokens=1000, completion_tokens=0, cached_tokens=600)
    assert plain == pytest.approx(1000 * 2.5 / 1_000_000)
    assert cached == pytest.approx((400 * 2.5 + 600 * 1.25) / 1_000_000)
    # More cached than prompt tokens cannot cost less than all of them cached.
    assert cost_usd("openai", "gpt-4o", NOW, prompt_tokens=10, completion_tokens=0, cached_tokens=50) == (
        pytest.approx(10 * 1.25 / 1_000_000)
    )


def test_it_leaves_unknown_models_unpriced_not_free() -> None:
    assert (
        cost_usd("openai", "my-fine-tune-that-does-not-exist", NOW, prompt_tokens=10, completion_tokens=5)
        is None
    )
    assert price_of("acme", "acme-large-9", NOW) is None


def test_it_finds_a_model_behind_an_unknown_provider_name() -> None:
    # A gateway or proxy's own name: the model's name alone finds it.
    assert cost_usd("my-gateway", "gpt-4o", NOW, prompt_tokens=150, completion_tokens=80) == cost_usd(
        "openai", "gpt-4o", NOW, prompt_tokens=150, completion_tokens=80
    )


def test_it_names_the_price_data_version() -> None:
    import genai_prices

    assert PRICE_VERSION == f"genai-prices {genai_prices.__version__}"


def test_costs_are_free_of_float_noise() -> None:
    cost = cost_usd("anthropic", "claude-3-5-haiku-latest", NOW, prompt_tokens=150, completion_tokens=80)
    assert cost is not None
    assert Decimal(str(cost)) == Decimal("0.00044")  # 150 x $0.80/M + 80 x $4/M


def test_it_prices_with_the_network_unreachable() -> None:
    """In a fresh interpreter whose every connection and name lookup fails (and is recorded by an
    audit hook, so one swallowed by a library is still seen), the app starts and prices events."""
    script = textwrap.dedent(
        """
        import socket, sys
        attempts = []
        def hook(event, args):
            if event in ("socket.connect", "socket.getaddrinfo", "socket.gethostbyname"):
                attempts.append((event, repr(args)[:200]))
        sys.addaudithook(hook)
        def unreachable(*args, **kwargs):
            raise OSError(101, "Network is unreachable")
        socket.socket.connect = unreachable
        socket.getaddrinfo = unreachable
        socket.create_connection = unreachable

        from datetime import UTC, datetime
        from control_plane.api.app import create_app
        from control_plane.settings import Settings
        from control_plane.ai.pricing import cost_usd
        create_app(Settings(database_url="sqlite+aiosqlite:///:memory:"))
        now = datetime.now(UTC)
        costs = [
            cost_usd("openai", "gpt-4o", now, prompt_tokens=150, completion_tokens=80),
            cost_usd("anthropic", "claude-sonnet-4-20250514", now, prompt_tokens=150, completion_tokens=80),
            cost_usd("google", "gemini-2.5-flash", now, prompt_tokens=150, completion_tokens=80),
        ]
        assert all(cost is not None and cost > 0 for cost in costs), costs
        assert not attempts, attempts
        print("priced offline", costs)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "priced offline" in done.stdout

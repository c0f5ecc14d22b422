"""The insights rules: pure functions from one LLM monitor's usage aggregates (the last 24 h and the
24 h before) to findings. The worker (insights_job.py) gathers the aggregates with SQL and keeps
the findings (store.py); nothing here does I/O.

Savings are USD per day from real prices (pricing.py), scaled from the window to 24 h. A finding is
about one subject (a model, a prompt hash; "" when the type has one per monitor).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from control_plane.ai.insights.cheaper_models import cheaper_model
from control_plane.ai.insights.usage import STORM_SECONDS, Usage
from control_plane.ai.pricing import cost_usd, price_of
from control_plane.domain import histogram

MODEL_DOWNGRADE = "model_downgrade"
DUPLICATE_PROMPTS = "duplicate_prompts"
HIGH_ERROR_RATE = "high_error_rate"
RETRY_STORM = "retry_storm"
LATENCY_REGRESSION = "latency_regression"
RAG_CONTEXT_BLOAT = "rag_context_bloat"
UNPRICED_MODEL = "unpriced_model"

INFO, WARNING, CRITICAL = "info", "warning", "critical"
SEVERITY_RANK = {INFO: 0, WARNING: 1, CRITICAL: 2}

# Thresholds (docs in each rule).
SHORT_PROMPT_TOKENS = 500  # a short call: fewer prompt tokens than this...
SHORT_COMPLETION_TOKENS = 300  # ...and fewer completion tokens than this
SHORT_SHARE = 0.6
MIN_CALLS = 20  # below this a share or a percentile says little
DUPLICATE_MIN_COUNT = 5
DUPLICATE_SHARE = 0.2
TOP_PROMPTS = 5
ERROR_RATE_WARNING = 0.05
ERROR_RATE_CRITICAL = 0.20
STORM_FAILURES = 3  # this many failures of one prompt within STORM_SECONDS
STORM_CRITICAL_FAILURES = 10
LATENCY_INCREASE = 0.5
LATENCY_MIN_INCREASE_MS = 200.0
RAG_MIN_EVENTS = 10
RAG_CONTEXT_SHARE = 0.5
RAG_LOW_RELEVANCE = 0.5
MATERIAL_INCREASE = 0.5  # a dismissed insight comes back when a number grows this much

# The number that says how bad each finding is (a key of its metadata): a dismissed insight comes
# back when it (or the savings) grows by MATERIAL_INCREASE, or when its severity rises.
KEY_METRIC = {
    MODEL_DOWNGRADE: "shortCalls",
    DUPLICATE_PROMPTS: "repeatedCalls",
    HIGH_ERROR_RATE: "errorRate",
    RETRY_STORM: "failures",
    LATENCY_REGRESSION: "p95LatencyMs",
    RAG_CONTEXT_BLOAT: "excessContextTokens",
    UNPRICED_MODEL: "calls",
}


@dataclass(frozen=True, slots=True)
class Finding:
    type: str
    subject: str
    severity: str
    title: str
    description: str
    savings: float | None  # USD per day
    details: dict[str, Any] = field(default_factory=dict)  # the API's metadata


def findings(usage: Usage, at: datetime) -> list[Finding]:
    """Every finding that holds for this usage; `at` prices it."""
    found: list[Finding] = []
    found += model_downgrades(usage, at)
    found += duplicate_prompts(usage)
    found += high_error_rate(usage)
    found += retry_storms(usage)
    found += latency_regression(usage)
    found += rag_context_bloat(usage, at)
    found += unpriced_models(usage)
    return found


def numbers_of(type_: str, severity: str, savings: float | None, details: dict[str, Any]) -> dict[str, Any]:
    """What a dismissal remembers: the numbers a later finding is compared with."""
    metric = KEY_METRIC.get(type_, "")
    return {"severity": severity, "savings": savings, "metric": details.get(metric)}


def changed_materially(dismissed_numbers: dict[str, Any] | None, finding: Finding) -> bool:
    """Whether a finding differs enough from what was dismissed to be shown again."""
    if not dismissed_numbers:
        return True
    now = numbers_of(finding.type, finding.severity, finding.savings, finding.details)
    if SEVERITY_RANK.get(now["severity"], 0) > SEVERITY_RANK.get(str(dismissed_numbers.get("severity")), 0):
        return True
    return any(_grew(dismissed_numbers.get(key), now[key]) for key in ("savings", "metric"))


def _grew(before: Any, after: Any) -> bool:
    if not isinstance(after, (int, float)) or isinstance(after, bool):
        return False
    if not isinstance(before, (int, float)) or isinstance(before, bool) or before <= 0:
        return before is None and after > 0
    return after >= before * (1 + MATERIAL_INCREASE)


def _per_call_cost(
    provider: str, model: str, at: datetime, calls: int, prompt: int, completion: int, cached: int
) -> float | None:
    """`calls` calls costing what one average call of these totals costs (tiered prices apply per
    call, not to the sum)."""
    if calls <= 0:
        return 0.0
    one = cost_usd(
        provider,
        model,
        at,
        prompt_tokens=round(prompt / calls),
        completion_tokens=round(completion / calls),
        cached_tokens=round(cached / calls),
    )
    return None if one is None else one * calls


def model_downgrades(usage: Usage, at: datetime) -> list[Finding]:
    """A premium model whose calls are mostly short (SHORT_SHARE of at least MIN_CALLS calls under
    SHORT_PROMPT_TOKENS prompt and SHORT_COMPLETION_TOKENS completion tokens): the saving is what
    those short calls cost on it less what they would on the cheaper model."""
    found = []
    for calls in usage.short_calls:
        if calls.calls < MIN_CALLS or calls.short_calls < calls.calls * SHORT_SHARE:
            continue
        cheaper = cheaper_model(calls.provider, calls.model, at)
        premium = price_of(calls.provider, calls.model, at)
        if cheaper is None or premium is None:
            continue
        tokens = (
            calls.short_calls,
            calls.short_prompt_tokens,
            calls.short_completion_tokens,
            calls.short_cached_tokens,
        )
        now_cost = _per_call_cost(calls.provider, calls.model, at, *tokens)
        cheaper_cost = _per_call_cost(premium.provider_id, cheaper, at, *tokens)
        if now_cost is None or cheaper_cost is None or cheaper_cost >= now_cost:
            continue
        savings = _usd((now_cost - cheaper_cost) * usage.per_day)
        share = _percent(calls.short_calls, calls.calls)
        found.append(
            Finding(
                MODEL_DOWNGRADE,
                calls.model,
                WARNING,
                f"Consider using {cheaper}",
                f"{share:g}% of your {calls.model} requests use fewer than {SHORT_PROMPT_TOKENS} prompt "
                f"and {SHORT_COMPLETION_TOKENS} completion tokens. A smaller model could reduce costs.",
                savings,
                {
                    "recommendation": f"Switch short prompts from {calls.model} to {cheaper} to save "
                    f"~${savings:.2f}/day.",
                    "model": calls.model,
                    "cheaperModel": cheaper,
                    "calls": calls.calls,
                    "shortCalls": calls.short_calls,
                    "shortCallShare": share,
                    "shortCallsCostUsdPerDay": _usd(now_cost * usage.per_day),
                    "cheaperCostUsdPerDay": _usd(cheaper_cost * usage.per_day),
                },
            )
        )
    return found


def duplicate_prompts(usage: Usage) -> list[Finding]:
    """One prompt hash seen DUPLICATE_MIN_COUNT times, or repeats DUPLICATE_SHARE of at least
    MIN_CALLS calls: a cache would have answered the repeats for free."""
    prompts = usage.prompts
    calls = sum(model.events for model in usage.current)
    share = prompts.repeated_calls / calls if calls else 0.0
    if prompts.most_calls < DUPLICATE_MIN_COUNT and not (calls >= MIN_CALLS and share >= DUPLICATE_SHARE):
        return []
    savings = None if prompts.repeats_cost_usd is None else _usd(prompts.repeats_cost_usd * usage.per_day)
    saving_text = f" to save ~${savings:.2f}/day" if savings is not None else ""
    return [
        Finding(
            DUPLICATE_PROMPTS,
            "",
            WARNING if share >= DUPLICATE_SHARE else INFO,
            "Cache repeated prompts",
            f"{prompts.repeated_calls} of your {calls} requests in the last 24 hours repeated a prompt "
            f"already sent ({_percent(prompts.repeated_calls, calls):g}%).",
            savings,
            {
                "recommendation": f"Cache responses for repeated prompts{saving_text}.",
                "calls": calls,
                "repeatedCalls": prompts.repeated_calls,
                "repeatedShare": _percent(prompts.repeated_calls, calls),
                "topPrompts": [{"promptHash": top.prompt_hash, "calls": top.calls} for top in prompts.top],
            },
        )
    ]


def high_error_rate(usage: Usage) -> list[Finding]:
    """Errors at least ERROR_RATE_WARNING of at least MIN_CALLS calls (critical from
    ERROR_RATE_CRITICAL)."""
    calls = sum(model.events for model in usage.current)
    errors = sum(model.errors for model in usage.current)
    if calls < MIN_CALLS or errors < calls * ERROR_RATE_WARNING:
        return []
    rate = _percent(errors, calls)
    worst = sorted((model for model in usage.current if model.errors), key=lambda m: (-m.errors, m.model))
    return [
        Finding(
            HIGH_ERROR_RATE,
            "",
            CRITICAL if errors >= calls * ERROR_RATE_CRITICAL else WARNING,
            f"{rate:g}% of requests failed",
            f"{errors} of your {calls} requests in the last 24 hours failed.",
            None,
            {
                "recommendation": "Check the failing requests' errors (rate limits, timeouts, invalid "
                "requests) and add retries with backoff or a fallback model.",
                "calls": calls,
                "errors": errors,
                "errorRate": rate,
                "models": [{"model": m.model, "errors": m.errors, "calls": m.events} for m in worst[:5]],
            },
        )
    ]


def retry_storms(usage: Usage) -> list[Finding]:
    """One prompt failing STORM_FAILURES times within STORM_SECONDS: the retries' cost is the
    saving (retrying at once rarely helps)."""
    found = []
    for burst in usage.bursts:
        if burst.longest_burst < STORM_FAILURES:
            continue
        savings = None if burst.retries_cost_usd is None else _usd(burst.retries_cost_usd * usage.per_day)
        found.append(
            Finding(
                RETRY_STORM,
                burst.prompt_hash,
                CRITICAL if burst.longest_burst >= STORM_CRITICAL_FAILURES else WARNING,
                "Retry storm on one prompt",
                f"The prompt {burst.prompt_hash} failed {burst.longest_burst} times within "
                f"{STORM_SECONDS} seconds ({burst.failures} failures in the last 24 hours).",
                savings,
                {
                    "recommendation": "Retry with exponential backoff and a retry limit, and stop "
                    "retrying errors that will not go away (invalid requests, context too long).",
                    "promptHash": burst.prompt_hash,
                    "failures": burst.failures,
                    "longestBurst": burst.longest_burst,
                    "retries": burst.retries,
                    "windowSeconds": STORM_SECONDS,
                },
            )
        )
    return found


def latency_regression(usage: Usage) -> list[Finding]:
    """p95 latency up LATENCY_INCREASE (and LATENCY_MIN_INCREASE_MS) against the 24 h before, with
    MIN_CALLS calls in each (critical when it doubled)."""
    current = histogram.merged(model.latency_histogram for model in usage.current)
    previous = histogram.merged(model.latency_histogram for model in usage.previous)
    calls, previous_calls = sum(current.values()), sum(previous.values())
    if calls < MIN_CALLS or previous_calls < MIN_CALLS:
        return []
    p95, before = histogram.quantile(current, 0.95), histogram.quantile(previous, 0.95)
    if p95 is None or before is None:
        return []
    if p95 < before * (1 + LATENCY_INCREASE) or p95 - before < LATENCY_MIN_INCREASE_MS:
        return []
    increase = round((p95 / before - 1) * 100, 1)
    return [
        Finding(
            LATENCY_REGRESSION,
            "",
            CRITICAL if p95 >= before * 2 else WARNING,
            f"p95 latency up {increase:g}%",
            f"p95 latency rose from {before:.0f} ms to {p95:.0f} ms against the previous 24 hours.",
            None,
            {
                "recommendation": "Look for longer prompts or completions, a model change, or the "
                "provider's status; consider streaming or a faster model for latency-sensitive calls.",
                "p95LatencyMs": round(p95, 1),
                "previousP95LatencyMs": round(before, 1),
                "increasePercent": increase,
                "calls": calls,
                "previousCalls": previous_calls,
            },
        )
    ]


def rag_context_bloat(usage: Usage, at: datetime) -> list[Finding]:
    """RAG calls (at least RAG_MIN_EVENTS reporting context tokens and relevance) whose context is
    RAG_CONTEXT_SHARE of their prompt tokens at an average relevance under RAG_LOW_RELEVANCE: the
    saving is the irrelevant share of the context (context x (1 - relevance)) at input prices."""
    events = sum(rag.events for rag in usage.rag)
    prompt = sum(rag.prompt_tokens for rag in usage.rag)
    context = sum(rag.context_tokens for rag in usage.rag)
    if events < RAG_MIN_EVENTS or prompt <= 0:
        return []
    relevance = sum(rag.relevance_sum for rag in usage.rag) / events
    share = context / prompt
    if share < RAG_CONTEXT_SHARE or relevance >= RAG_LOW_RELEVANCE:
        return []
    excess = sum(rag.excess_context_tokens for rag in usage.rag)
    costs = [
        _per_call_cost(rag.provider, rag.model, at, rag.events, round(rag.excess_context_tokens), 0, 0)
        for rag in usage.rag
    ]
    priced = [cost for cost in costs if cost is not None]
    savings = _usd(sum(priced) * usage.per_day) if priced else None
    saving_text = f" to save ~${savings:.2f}/day" if savings is not None else ""
    return [
        Finding(
            RAG_CONTEXT_BLOAT,
            "",
            WARNING,
            "Retrieved context is large and weakly relevant",
            f"Retrieved context is {_percent(context, prompt):g}% of the prompt tokens of {events} RAG "
            f"requests, at an average relevance of {relevance:.2f}.",
            savings,
            {
                "recommendation": f"Retrieve fewer, more relevant documents (a relevance cutoff or "
                f"reranking){saving_text}.",
                "ragCalls": events,
                "contextShare": _percent(context, prompt),
                "avgRelevance": round(relevance, 3),
                "contextTokens": context,
                "excessContextTokens": round(excess),
            },
        )
    ]


def unpriced_models(usage: Usage) -> list[Finding]:
    """Calls to a model the price data does not know: their cost is missing from every figure."""
    unpriced: dict[str, int] = {}
    calls: dict[str, int] = {}
    for model in usage.current:
        calls[model.model] = calls.get(model.model, 0) + model.events
        if model.unpriced_events:
            unpriced[model.model] = unpriced.get(model.model, 0) + model.unpriced_events
    return [
        Finding(
            UNPRICED_MODEL,
            model,
            INFO,
            f"No prices for {model}",
            f"{count} requests to {model} in the last 24 hours have no cost: the price data does not "
            "know this model.",
            None,
            {
                "recommendation": "Report the provider's model id as the provider names it (e.g. "
                "gpt-4o, claude-sonnet-4-20250514), or expect this model's spend to be missing from "
                "costs and budgets.",
                "model": model,
                "calls": count,
                "share": _percent(count, calls[model]),
            },
        )
        for model, count in sorted(unpriced.items())
    ]


def _percent(part: float, whole: float) -> float:
    return round(part / whole * 100, 1) if whole else 0.0


def _usd(value: float) -> float:
    return round(value, 6)

"""Process settings, read from TRAXO_* environment variables once at start and passed down."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Plan(StrEnum):
    FREE = "FREE"
    PRO = "PRO"
    BUSINESS = "BUSINESS"
    ENTERPRISE = "ENTERPRISE"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TRAXO_", extra="ignore")

    # The embedded default keeps every runtime file in one ignored folder, `.traxo/`.
    database_url: str = "sqlite+aiosqlite:///./.traxo/traxo.db"
    # Optional: when set, rate-limit counters live in Redis so replicas share one budget.
    redis_url: str | None = None
    # Scales every plan's request budget: self-hosters may raise it (or set it for load tests).
    rate_limit_multiplier: float = Field(default=1.0, gt=0)
    # Failed authentications (keys, webhook secrets, unknown badges) an address may make a minute
    # before its 429s: slows key guessing. A fuzzer sending every operation without a key raises it.
    failed_auth_per_minute: int = Field(default=60, ge=1)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    # Plan given to every newly created organization (self-hosters raise it).
    default_plan: Plan = Plan.FREE
    # How stale an API key's lastUsed may get before a request refreshes it.
    last_used_resolution_seconds: int = Field(default=60, ge=0)
    # How long an authenticated key is trusted without a database read; any auth change (revoke,
    # membership, plan) empties the cache at once on every replica, so this only bounds the damage
    # if a change notification were lost.
    auth_cache_seconds: int = Field(default=60, ge=0)
    log_level: str = "info"
    # text: `time LEVEL logger message`; json: one object a line (docs/operations.md). `traxo dev`
    # always logs text.
    log_format: Literal["text", "json"] = "text"
    # One INFO line per HTTP request (method, path, status, milliseconds, request id). Off by
    # default: the AI ingest alone answers thousands of requests a second.
    access_log: bool = False
    # SIGTERM drains the process within this many seconds (under Kubernetes' 30 s grace period):
    # /readyz 503 and gRPC health NOT_SERVING at once, new connections still taken for
    # `shutdown_delay_seconds` (while load balancers notice), then in-flight requests finished,
    # agents' streams ended, workers' passes finished, the AI ingest's queue committed.
    shutdown_deadline_seconds: float = Field(default=25, gt=0)
    shutdown_delay_seconds: float = Field(default=0, ge=0)
    # Where users and their jobs reach this server (heartbeat and ingest URLs are built from it).
    # Unset, `traxo api` and `traxo dev` derive it from the address they serve.
    public_url: str = "http://127.0.0.1:8000"
    # Regions monitors may name besides those that have agent tokens (comma-separated or JSON list).
    regions: Annotated[list[str], NoDecode] = ["us-east-1"]
    default_regions: Annotated[list[str], NoDecode] = ["us-east-1"]
    # Raw check results are kept this long; hourly and daily rollups much longer.
    retention_days: int = Field(default=30, ge=1)
    rollup_retention_days: int = Field(default=400, ge=1)
    retention_interval_seconds: float = Field(default=3600, gt=0)
    # How often queued results are folded into their rollups. Reads count the queue, so this only
    # trades database work (a rollup row is rewritten once per fold) against the queue's size.
    rollup_fold_seconds: float = Field(default=5, gt=0)
    # How often the incident engine takes the queue of agents' results (they are acknowledged
    # once stored, and judged here), and its sweep: regions gone silent (NO_DATA incidents),
    # flapping incidents stable long enough to close, results nobody evaluated.
    incident_queue_seconds: float = Field(default=0.5, gt=0)
    incident_sweep_seconds: float = Field(default=5, gt=0)
    # Agents renew their lease about three times per period; one that misses
    # `agent_lease_missed_periods` whole periods loses its monitors to its region's other agents.
    agent_lease_seconds: float = Field(default=10, gt=0)
    agent_lease_missed_periods: int = Field(default=3, ge=1)
    # Monitor changes are assigned as they happen; this full pass over every monitor of a region is
    # the safety net for changes nobody announced (another process on a SQLite file, say).
    agent_full_pass_seconds: float = Field(default=60, gt=0)
    # A region is rebalanced once agents have stopped joining it for this long (and at most five
    # windows after the first joined): agents started together (a rollout, a restart of the fleet)
    # are balanced in one pass, rather than the first holding the whole region for a moment and
    # every later one taking its share from the rest in a pass of its own. 0: at once.
    agent_join_window_seconds: float = Field(default=1, ge=0)
    # Agents' result batches converted and being stored at once in this process, over all streams
    # (a stream stores at most 4 of its own). A batch being stored holds ~0.5 MB (500 results
    # converted); the batches waiting are stored a group at a time, in one transaction each, by 4
    # committers (4 of the pool's 40 PostgreSQL connections). A batch past the bound waits, and its
    # stream reads no further (HTTP/2 flow control leaves the rest in the agent's spool).
    agent_results_max_batches: int = Field(default=32, ge=1)
    # Heartbeat pings: the start of a ping's body kept as its log (the rest is dropped, not
    # refused), pings per token per minute, and how often the sweep looks for late heartbeats.
    heartbeat_body_max_bytes: int = Field(default=10_000, ge=0)
    heartbeat_pings_per_minute: int = Field(default=60, ge=1)
    heartbeat_sweep_seconds: float = Field(default=2, gt=0)
    # Alert delivery. SMTP for EMAIL channels (security: starttls | tls | none).
    smtp_host: str | None = None
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_from: str = "Traxo <alerts@traxo.local>"
    smtp_security: Literal["starttls", "tls", "none"] = "starttls"
    smtp_timeout_seconds: float = Field(default=10, gt=0)
    # PagerDuty's Events API v2 (tests point it at a local server).
    pagerduty_events_url: str = "https://events.pagerduty.com/v2/enqueue"
    # Outbound alert URLs may not reach loopback, private, link-local or reserved addresses unless
    # this is set (a self-hoster alerting a service on their own network, or tests).
    alerts_allow_private_urls: bool = False
    # A delivery is retried with backoff for this long before it is marked failed.
    alert_delivery_give_up_hours: float = Field(default=24, gt=0)
    # How often the delivery worker looks for due deliveries (it is also woken by new events), how
    # long one send may take, and how many deliveries one pass claims.
    alert_delivery_seconds: float = Field(default=1, gt=0)
    alert_send_timeout_seconds: float = Field(default=10, gt=0)
    alert_delivery_batch: int = Field(default=100, ge=1, le=10_000)
    # How long a process serves a status page's public view (JSON and HTML) before reading it
    # again, behind the visitors' backs: an incident shows within this many seconds and a refresh.
    # 0: read on every request.
    status_page_cache_seconds: float = Field(default=5, ge=0, le=60)
    # AI monitoring. Ingest: events per batch request, events one group commit writes at most (the
    # requests waiting are answered after it commits), and the bounds of an event's `metadata`.
    ai_ingest_batch_max: int = Field(default=1000, ge=1, le=10_000)
    ai_commit_max_events: int = Field(default=2000, ge=1)
    # Events the AI ingest holds at once (queued, or in a group being written) before it answers
    # 503 with Retry-After instead of queueing more. 6,000 = (2 + 1) x ai_commit_max_events: each of
    # PostgreSQL's two writers busy with a full group and a full one ready for the first to finish,
    # so the writers never wait for work; holding more commits no faster, it only makes requests
    # wait longer (6,000 is ~1.3 s of the ~4,800 events/s measured, bench/README.md) and takes
    # more memory (the events held take a few MB, at most ai_metadata_max_bytes each).
    ai_ingest_max_pending_events: int = Field(default=6_000, ge=1)
    ai_metadata_max_bytes: int = Field(default=16_384, ge=2)
    ai_metadata_max_depth: int = Field(default=5, ge=1)
    # Raw AI events are kept this long (their hourly rollups for rollup_retention_days).
    ai_retention_days: int = Field(default=30, ge=1)
    # How often the insights worker looks at recent usage, and the budget worker at spend.
    ai_insights_seconds: float = Field(default=300, gt=0)
    ai_budget_seconds: float = Field(default=60, gt=0)
    # Status pages: the DNS server custom domains' TXT records are looked up at ("host" or
    # "host:port"; unset: the system's resolvers).
    dns_resolver: str | None = None
    # How often status page subscribers are mailed what happened on their pages.
    status_page_notify_seconds: float = Field(default=10, gt=0)
    # Prometheus: /metrics wants `Authorization: Bearer <this>` when set (it names every tenant's
    # monitors); unset, it answers loopback clients only. Per-monitor probe series ((monitor, region)
    # pairs) are capped at metrics_monitor_limit (0: none); traxo_monitor_series_dropped counts the rest.
    metrics_token: str | None = None
    metrics_monitor_limit: int = Field(default=10_000, ge=0)
    grpc_port: int = Field(default=50051, ge=0, le=65535)
    # gRPC servers listening on that one port (SO_REUSEPORT: the kernel spreads the agents'
    # connections over them). A server hands the process one new call at a time, and each takes an
    # event-loop pass or two; while the loop is busy storing results, 200 agents' renewals, streams
    # and registrations queued behind one server's handoff past gRPC's 30 s, and were cancelled.
    grpc_listeners: int = Field(default=4, ge=1, le=64)
    # TLS for the agent protocol (PEM files); plaintext gRPC when unset.
    grpc_tls_cert: str | None = None
    grpc_tls_key: str | None = None
    # RevenueCat (billing). Unset keys leave billing "not configured": operators set plans with
    # `traxo orgs set-plan` instead, and checkout, portal and the webhook say so.
    revenuecat_api_url: str = "https://api.revenuecat.com"
    revenuecat_secret_key: str | None = None  # REST API v1 secret key: the portal reads subscribers
    revenuecat_public_key: str | None = None  # the web SDK's public key, handed out by checkout
    # RevenueCat sends this value verbatim in the webhook's Authorization header.
    revenuecat_webhook_secret: str | None = None
    revenuecat_timeout_seconds: float = Field(default=10.0, gt=0)
    revenuecat_product_pro: str = "traxo_pro_monthly"
    revenuecat_product_business: str = "traxo_business_monthly"
    revenuecat_product_enterprise: str = "traxo_enterprise_monthly"

    @field_validator("regions", "default_regions", mode="before")
    @classmethod
    def _region_list(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("metrics_token")
    @classmethod
    def _empty_is_unset(cls, value: str | None) -> str | None:
        return value.strip() or None if value is not None else None

    @field_validator("public_url", "revenuecat_api_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        return async_database_url(value)


def async_database_url(url: str) -> str:
    """Accept the URLs people paste (postgres://, postgresql://, sqlite://) and pick our async drivers."""
    for prefix in ("postgres://", "postgresql://", "postgresql+psycopg2://", "postgresql+asyncpg://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    if url.startswith("sqlite://"):
        return "sqlite+aiosqlite://" + url[len("sqlite://") :]
    return url


def sync_database_url(url: str) -> str:
    """The same database through a synchronous driver, for Alembic."""
    url = async_database_url(url)
    if url.startswith("sqlite+aiosqlite://"):
        return "sqlite://" + url[len("sqlite+aiosqlite://") :]
    return url

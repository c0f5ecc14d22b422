"""The agent's settings: CLI flags over TRAXO_AGENT_* environment variables, built once in main()."""

from __future__ import annotations

import argparse
import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

ENV_PREFIX = "TRAXO_AGENT_"


@dataclass(frozen=True, slots=True)
class AgentSettings:
    control_plane: str
    token: str
    region: str
    name: str
    metrics_host: str = "0.0.0.0"
    metrics_port: int = 9110
    spool_path: Path = Path("traxo-agent-spool.sqlite3")
    spool_max_bytes: int = 256 * 1024 * 1024
    spool_max_age_s: float = 24 * 3600
    tls: bool = False
    ca_file: Path | None = None
    max_concurrency: int = 1000
    chromium_path: str | None = None  # None: `chromium` on PATH
    max_browser_checks: int = 2  # concurrent BROWSER checks: each is a Chromium page, hundreds of MB
    shutdown_deadline_s: float = 10.0
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 30.0
    log_level: str = "INFO"
    log_format: str = "text"  # or "json": one object a line

    @property
    def assignments_path(self) -> Path:
        # Next to the spool, so one volume keeps both across restarts.
        return self.spool_path.with_name(self.spool_path.stem + ".assignments.pb")


def parse_settings(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> AgentSettings:
    env = os.environ if env is None else env

    def default(name: str, fallback: str | None = None) -> str | None:
        return env.get(ENV_PREFIX + name.upper().replace("-", "_"), fallback)

    parser = argparse.ArgumentParser(
        prog="traxo-agent",
        description="Runs Traxo checks assigned by the control plane. Every flag also reads "
        f"{ENV_PREFIX}<FLAG> (e.g. {ENV_PREFIX}TOKEN).",
    )
    parser.add_argument("--control-plane", default=default("control-plane"), help="HOST:PORT of the gRPC API")
    parser.add_argument("--token", default=default("token"), help="agent token (prefer the env variable)")
    parser.add_argument("--region", default=default("region"))
    parser.add_argument("--name", default=default("name", socket.gethostname()))
    parser.add_argument("--metrics-host", default=default("metrics-host", "0.0.0.0"))
    parser.add_argument("--metrics-port", type=int, default=int(default("metrics-port", "9110") or 9110))
    parser.add_argument("--spool", default=default("spool", "traxo-agent-spool.sqlite3"), help="spool file")
    parser.add_argument("--spool-max-mb", type=float, default=float(default("spool-max-mb", "256") or 256))
    parser.add_argument(
        "--spool-max-age-hours", type=float, default=float(default("spool-max-age-hours", "24") or 24)
    )
    parser.add_argument(
        "--tls",
        action=argparse.BooleanOptionalAction,
        default=_truthy(default("tls", "false")),
        help="TLS to the control plane",
    )
    parser.add_argument("--ca-file", default=default("ca-file"), help="CA bundle for --tls (PEM)")
    parser.add_argument(
        "--max-concurrency", type=int, default=int(default("max-concurrency", "1000") or 1000)
    )
    parser.add_argument(
        "--chromium", default=default("chromium"), help="Chromium executable for BROWSER checks"
    )
    parser.add_argument(
        "--max-browser-checks",
        type=int,
        default=int(default("max-browser-checks", "2") or 2),
        help="BROWSER checks running at once; more wait for a free place",
    )
    parser.add_argument(
        "--shutdown-deadline",
        type=float,
        default=float(default("shutdown-deadline", "10") or 10),
        help="seconds running checks get to finish on SIGTERM, and results to be acknowledged",
    )
    parser.add_argument(
        "--reconnect-min",
        type=float,
        default=float(default("reconnect-min", "1") or 1),
        help="first reconnect backoff, seconds",
    )
    parser.add_argument(
        "--reconnect-max",
        type=float,
        default=float(default("reconnect-max", "30") or 30),
        help="longest reconnect backoff, seconds",
    )
    parser.add_argument("--log-level", default=default("log-level", "INFO"))
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        default=default("log-format", "text"),
        help="text, or json: one object a line (time, level, logger, message, exception)",
    )
    args = parser.parse_args(argv)

    missing = [
        flag
        for flag, value in (
            ("--control-plane", args.control_plane),
            ("--token", args.token),
            ("--region", args.region),
        )
        if not value
    ]
    if missing:
        parser.error(
            "missing " + ", ".join(f"{m} (or {ENV_PREFIX}{m[2:].upper().replace('-', '_')})" for m in missing)
        )
    if not 0 <= args.metrics_port <= 65535:
        parser.error(f"--metrics-port must be 0-65535, got {args.metrics_port}")
    if args.max_concurrency < 1:
        parser.error(f"--max-concurrency must be at least 1, got {args.max_concurrency}")
    if args.max_browser_checks < 1:
        parser.error(f"--max-browser-checks must be at least 1, got {args.max_browser_checks}")
    if not 0 < args.reconnect_min <= args.reconnect_max:
        parser.error("--reconnect-min must be above 0 and at most --reconnect-max")
    if args.ca_file and not args.tls:
        parser.error("--ca-file needs --tls")
    return AgentSettings(
        control_plane=args.control_plane,
        token=args.token,
        region=args.region,
        name=args.name,
        metrics_host=args.metrics_host,
        metrics_port=args.metrics_port,
        spool_path=Path(args.spool),
        spool_max_bytes=int(args.spool_max_mb * 1024 * 1024),
        spool_max_age_s=args.spool_max_age_hours * 3600,
        tls=args.tls,
        ca_file=Path(args.ca_file) if args.ca_file else None,
        max_concurrency=args.max_concurrency,
        chromium_path=args.chromium or None,
        max_browser_checks=args.max_browser_checks,
        shutdown_deadline_s=args.shutdown_deadline,
        reconnect_min_s=args.reconnect_min,
        reconnect_max_s=args.reconnect_max,
        log_level=args.log_level.upper(),
        log_format=args.log_format,
    )


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}

"""What the benches share: the repository's `traxo`, free loopback ports, a `traxo api` started
and waited for, PostgreSQL's admin connection, and wrk's figures read back.

Imported by the benches beside it (`.venv/bin/python bench/x.py` puts this folder on the path).
"""

from __future__ import annotations

import re
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".venv" / "bin"
POSTGRES = "postgresql://postgres@127.0.0.1:5432"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def traxo(env: dict[str, str], *arguments: str) -> str:
    """`traxo ARGUMENTS` run to its end; its standard output."""
    return subprocess.run(
        [str(BIN / "traxo"), *arguments], env=env, check=True, capture_output=True, text=True
    ).stdout


def psql_admin(statement: str) -> None:
    """A statement on the server's `postgres` database (CREATE/DROP DATABASE), outside a transaction."""
    with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as conn:
        conn.execute(statement)


def wait_ready(url: str, method: str = "GET", within: float = 60) -> None:
    """Until `url` answers anything but a 5xx."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if httpx.request(method, url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} never answered")


# Every column of a monitors row, in the order the benches' COPY rows give them.
COPY_MONITORS = (
    "COPY monitors (id, org_id, name, type, url, interval, timeout, method, regions, config, is_active,"
    " created_at, updated_at) FROM STDIN"
)


def start_api(
    env: dict[str, str], port: int, *options: str, workers: bool = False, within: float = 30
) -> subprocess.Popen[bytes]:
    """`traxo api` on 127.0.0.1:`port` without migrating (the bench did), and without its workers
    unless `workers` (plus `options`), once it answers /readyz."""
    api = subprocess.Popen(
        [str(BIN / "traxo"), "api", "--host", "127.0.0.1", "--port", str(port), "--no-migrate",
         *(() if workers else ("--no-workers",)), *options],
        env=env,
    )  # fmt: skip
    try:
        wait_ready(f"http://127.0.0.1:{port}/readyz", within=within)
    except SystemExit:
        api.kill()
        raise
    return api


def stop(process: subprocess.Popen[bytes], within: float = 30) -> None:
    """SIGTERM, and SIGKILL if it has not exited `within` seconds later."""
    process.terminate()
    try:
        process.wait(timeout=within)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wrk(url: str, seconds: float, connections: int, *options: str) -> dict[str, Any]:
    """wrk -t2 at `connections` for `seconds` (with `options`: a Lua script, headers): requests/s,
    p50, p99 and the slowest in ms, requests in all, non-2xx answers and socket errors (wrk leaves
    requests past its --timeout, 2 s unless `options` say otherwise, out of the latencies)."""
    output = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency", *options, url],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(r"Socket errors: (.*)", output)
    return {
        "rate": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),  # type: ignore[union-attr]
        "p50": to_ms(re.search(r"^\s+50%\s+(\S+)", output, re.M).group(1)),  # type: ignore[union-attr]
        "p99": to_ms(re.search(r"^\s+99%\s+(\S+)", output, re.M).group(1)),  # type: ignore[union-attr]
        "max": to_ms(re.search(r"^\s+Latency\s+\S+\s+\S+\s+(\S+)", output, re.M).group(1)),  # type: ignore[union-attr]
        "total": int(re.search(r"(\d+) requests in", output).group(1)),  # type: ignore[union-attr]
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": errors.group(1) if errors else "none",
    }


def to_ms(value: str) -> float:
    """A wrk duration (12.3us, 4.5ms, 1.2s, 2m) in milliseconds."""
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]

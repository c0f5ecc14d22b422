"""Issue 5, benchmark part 1: peak HTTP checks per second of one agent process vs. blackbox_exporter.

Both probe the same local nginx (Debian's, started here with a temporary config on a free loopback
port, serving a small static file), each probe on a fresh connection, at the same concurrency:

* the agent: `agent.checks` registry -> `HTTP` runner (agent/checks/http.py), the call the scheduler
  makes, wrapped in the same timeout, in this process's asyncio loop; N workers, each running one
  check after the other (a closed loop, so N is the concurrency);
* prometheus-blackbox-exporter (Debian's) with an `http` module (its prober turns keep-alive off: a
  fresh connection per probe), driven by wrk with N connections on `/probe?target=...&module=...`.

Phases alternate (agent, blackbox, agent, ...) so that noise from other work hits both; the best
round of each side is reported, with the ratio. Every loop is bounded by a duration; wrk is too.

    .venv/bin/python bench/agent_throughput.py                  # sweep concurrency, then 3 rounds
    .venv/bin/python bench/agent_throughput.py --concurrency 64 --duration 10 --rounds 3

Needs `nginx`, `prometheus-blackbox-exporter` and `wrk` (see bench/README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.checks import load_registry
from agent.checks.base import CheckSpec

PAGE = b"<!doctype html><title>traxo bench</title><p>ok</p>\n"  # a small static file, ~50 bytes
NGINX_CONF = """\
daemon off;
master_process on;
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        root {root}/www;
    }}
}}
"""
BLACKBOX_CONF = """\
modules:
  http_fresh:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
      ip_protocol_fallback: false
"""
# The agent's scheduler allows a check this much past its own timeout (agent/scheduler.py).
SCHEDULER_GRACE_S = 5.0


@dataclass
class Round:
    side: str
    concurrency: int
    per_second: float
    failures: int
    detail: str


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def need(program: str) -> str:
    path = shutil.which(program)
    if path is None:
        sys.exit(f"{program} not found; see bench/README.md for how to install it")
    return path


def wait_http(url: str, deadline_s: float = 10.0) -> None:
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.05)


@contextlib.contextmanager
def nginx(root: Path, page: bytes = PAGE) -> Iterator[str]:
    """Debian's nginx with its own config, pid and logs in root; yields the URL of the static file."""
    port = free_port()
    for folder in ("www", "body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (root / folder).mkdir()
    (root / "www" / "index.html").write_bytes(page)
    root.chmod(0o755)  # workers drop to `nobody` when the master runs as root
    (root / "www").chmod(0o755)
    (root / "www" / "index.html").chmod(0o644)
    conf = root / "nginx.conf"
    conf.write_text(NGINX_CONF.format(root=root, port=port))
    command = [need("nginx"), "-p", str(root), "-c", str(conf), "-e", str(root / "error.log")]
    with _process(command, root / "nginx.out") as process:
        url = f"http://127.0.0.1:{port}/index.html"
        _wait_or_explain(url, process, root / "error.log")
        yield url


@contextlib.contextmanager
def blackbox(root: Path) -> Iterator[str]:
    """prometheus-blackbox-exporter on a free loopback port; yields its base URL."""
    port = free_port()
    conf = root / "blackbox.yml"
    conf.write_text(BLACKBOX_CONF)
    command = [
        need("prometheus-blackbox-exporter"),
        f"--config.file={conf}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]
    with _process(command, root / "blackbox.log") as process:
        base = f"http://127.0.0.1:{port}"
        _wait_or_explain(f"{base}/-/healthy", process, root / "blackbox.log")
        yield base


@contextlib.contextmanager
def _process(command: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_or_explain(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    try:
        wait_http(url)
    except OSError:
        sys.exit(
            f"{process.args[0]} did not come up at {url} (exit {process.poll()}):\n{log.read_text()[-2000:]}"
        )


# --- the agent side --------------------------------------------------------------------------------


async def agent_round(target: str, concurrency: int, duration_s: float) -> Round:
    """`concurrency` workers run HTTP checks back to back through the registry until the deadline."""
    registry = load_registry({"HTTP": ("agent.checks.http", "http")})
    await registry.probe()
    run = registry.runner("HTTP")
    spec = CheckSpec(monitor_id="mon_bench", type="HTTP", target=target, interval_s=60, timeout_s=5.0)
    outcomes: Counter[str] = Counter()

    async def worker(until: float) -> None:
        while time.monotonic() < until:
            async with asyncio.timeout(spec.timeout_s + SCHEDULER_GRACE_S):
                result = await run(spec)
            outcomes[result.error_message or result.status.value] += 1

    try:
        warm_until = time.monotonic() + min(2.0, duration_s / 4)
        await asyncio.gather(*(worker(warm_until) for _ in range(concurrency)))
        outcomes.clear()
        started = time.monotonic()
        await asyncio.gather(*(worker(started + duration_s) for _ in range(concurrency)))
        elapsed = time.monotonic() - started
    finally:
        await registry.aclose()
    done = sum(outcomes.values())
    failures = done - outcomes["UP"]
    detail = ", ".join(f"{count} {what}" for what, count in outcomes.most_common(3))
    return Round("agent", concurrency, done / elapsed, failures, detail)


# --- the blackbox_exporter side --------------------------------------------------------------------


def blackbox_round(base: str, target: str, concurrency: int, duration_s: float, threads: int) -> Round:
    url = f"{base}/probe?target={target}&module=http_fresh"
    with urllib.request.urlopen(url, timeout=10) as response:  # one probe, to see it succeeds
        if "probe_success 1" not in response.read().decode():
            sys.exit(f"blackbox_exporter's probe of {target} failed; see its log")
    warm = max(1, round(min(2.0, duration_s / 4)))
    wrk = [need("wrk"), f"-t{min(threads, concurrency)}", f"-c{concurrency}", "--timeout", "10s"]
    subprocess.run([*wrk, f"-d{warm}s", url], check=True, capture_output=True, timeout=warm + 30)
    out = subprocess.run(
        [*wrk, f"-d{round(duration_s)}s", url],
        check=True,
        capture_output=True,
        text=True,
        timeout=duration_s + 30,
    ).stdout
    per_second = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    # A probe that fails still answers 200 (probe_success 0); sample the result right after the run.
    with urllib.request.urlopen(url, timeout=10) as response:
        after = "probe_success 1" in response.read().decode()
    detail = f"wrk: {errors.group(0) if errors else 'no socket errors'}; probe after run ok={after}"
    return Round("blackbox", concurrency, per_second, int(bad.group(1)) if bad else 0, detail)


# --- the run ---------------------------------------------------------------------------------------


def run_agent_round(target: str, concurrency: int, duration_s: float) -> Round:
    return asyncio.run(agent_round(target, concurrency, duration_s))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument(
        "--concurrency",
        type=int,
        help="one concurrency for both; default: sweep --sweep for the agent and use its best",
    )
    parser.add_argument("--sweep", default="8,16,32,64,128", help="concurrency values to try (agent)")
    parser.add_argument("--sweep-duration", type=float, default=4.0, help="seconds per sweep point")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measured round")
    parser.add_argument("--rounds", type=int, default=3, help="measured rounds per side, alternating")
    parser.add_argument("--wrk-threads", type=int, default=2)
    args = parser.parse_args()
    if not (1 <= args.rounds <= 10 and 1 <= args.duration <= 120):
        parser.error("--rounds must be 1-10 and --duration 1-120 s")

    with tempfile.TemporaryDirectory(prefix="traxo-bench-") as tmp:
        root = Path(tmp)
        root.chmod(0o755)  # nginx's workers, as `nobody` under root, walk into it
        (root / "nginx").mkdir()
        with nginx(root / "nginx") as target, blackbox(root) as base:
            print(f"target {target} (nginx, 1 worker); blackbox_exporter at {base}; {os.cpu_count()} CPUs")
            concurrency = args.concurrency
            if concurrency is None:
                sweep = [int(value) for value in args.sweep.split(",")]
                points = [run_agent_round(target, value, args.sweep_duration) for value in sweep]
                for point in points:
                    print(f"  sweep: agent c={point.concurrency:4d}  {point.per_second:8.0f} checks/s")
                concurrency = max(points, key=lambda point: point.per_second).concurrency
            rounds: list[Round] = []
            for _ in range(args.rounds):
                rounds.append(run_agent_round(target, concurrency, args.duration))
                rounds.append(blackbox_round(base, target, concurrency, args.duration, args.wrk_threads))
                for measured in rounds[-2:]:
                    print(
                        f"  {measured.side:8s} c={measured.concurrency}: {measured.per_second:8.0f}/s, "
                        f"{measured.failures} failed ({measured.detail})"
                    )
    best = {side: max(r.per_second for r in rounds if r.side == side) for side in ("agent", "blackbox")}
    failed = sum(r.failures for r in rounds)
    print(
        f"\nconcurrency {concurrency}, best of {args.rounds} x {args.duration:g}s: "
        f"agent {best['agent']:.0f} checks/s, blackbox_exporter {best['blackbox']:.0f} probes/s, "
        f"ratio {best['agent'] / best['blackbox']:.2f}; {failed} failed checks/probes"
    )


if __name__ == "__main__":
    main()

"""Issue 6's benchmark: BROWSER checks per minute one agent sustains here, and its RSS with Chromium.

The checks go through the agent's own path: `configure_pool(chromium, 2)` as the agent does at start
(the default cap of 2 concurrent browser checks), the registry's capability probe (launches Chromium
once), then the registry's BROWSER runner (agent/checks/browser.py: a fresh context per check in the
one shared browser). Twice as many workers as the cap run checks back to back, so the cap is always
full: what comes out is the most the agent sustains, not a schedule's rate. The page is a small
static one from Debian's nginx on loopback (a separate process, left out of the memory figures).

Memory: every second, the RSS of this process plus all its descendants (the Playwright driver,
Chromium's browser, renderer, GPU and utility processes) is summed from /proc; the PSS sum is shown
too, since RSS counts the pages Chromium's processes share once per process.

    .venv/bin/python bench/browser_throughput.py                 # ~2 minutes
    .venv/bin/python bench/browser_throughput.py --duration 30 --chromium /usr/bin/chromium
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from agent_throughput import nginx

from agent.checks import load_registry
from agent.checks.base import CheckSpec
from agent.checks.browser_pool import DEFAULT_MAX_CONCURRENT, configure_pool

PAGE = b"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Traxo status</title>
<style>body { font: 16px sans-serif; margin: 2em; } h1 { color: #234; }</style></head>
<body><h1>All systems operational</h1>
<p>A small page for the browser benchmark: a heading, a paragraph, a list.</p>
<ul><li>API</li><li>Dashboard</li><li>Agents</li></ul></body></html>
"""
MAX_CHECKS = 100_000  # a bound besides the duration


def descendants(root: int) -> list[int]:
    """root and every process below it, from /proc/<pid>/task/<tid>/children."""
    found, queue = [], [root]
    while queue:
        pid = queue.pop()
        found.append(pid)
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except FileNotFoundError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{pid}/task/{task}/children") as children:
                    queue.extend(int(child) for child in children.read().split())
            except FileNotFoundError:
                pass
    return found


def _kib(path: str, field: str) -> int:
    try:
        with open(path) as status:
            for line in status:
                if line.startswith(field):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0


def process_kinds(root: int, exclude: set[int]) -> Counter[str]:
    """How many of each process: python, the Node driver, Chromium's by --type (renderer, gpu...)."""
    kinds: Counter[str] = Counter()
    for pid in descendants(root):
        if pid in exclude:
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                # Chromium rewrites its argv into one space-separated string.
                argv = cmdline.read().replace(b"\0", b" ").split()
        except FileNotFoundError:
            continue
        if not argv:  # exiting (a zombie has no command line)
            continue
        kind = next((arg[7:].decode() for arg in argv if arg.startswith(b"--type=")), None)
        kinds[kind or Path(argv[0].decode()).name] += 1
    return kinds


def memory_mib(root: int, exclude: set[int]) -> tuple[float, float, int]:
    """(RSS sum, PSS sum, process count) over root's tree, without the excluded subtrees."""
    pids = [pid for pid in descendants(root) if pid not in exclude]
    rss = sum(_kib(f"/proc/{pid}/status", "VmRSS:") for pid in pids)
    pss = sum(_kib(f"/proc/{pid}/smaps_rollup", "Pss:") for pid in pids)
    return rss / 1024, pss / 1024, len(pids)


async def measure(url: str, chromium: str, duration_s: float, exclude: set[int]) -> None:
    configure_pool(chromium, DEFAULT_MAX_CONCURRENT)
    registry = load_registry({"BROWSER": ("agent.checks.browser", "browser")})
    idle_rss, idle_pss, _ = memory_mib(os.getpid(), exclude)
    await registry.probe()
    if "browser" not in registry.capabilities:
        sys.exit(f"Chromium at {chromium} did not start; see the log above")
    run = registry.runner("BROWSER")
    spec = CheckSpec(
        monitor_id="mon_browser_bench",
        type="BROWSER",
        target=url,
        interval_s=60,
        timeout_s=30,
        config={"steps": [{"action": "expect_text", "text": "All systems operational"}]},
    )
    outcomes: Counter[str] = Counter()
    durations: list[float] = []
    samples: list[tuple[float, float, int]] = []
    kinds_at_peak: Counter[str] = Counter()
    started_rss = memory_mib(os.getpid(), exclude)

    async def worker(until: float) -> None:
        while time.monotonic() < until and sum(outcomes.values()) < MAX_CHECKS:
            result = await run(spec)
            outcomes[result.error_message or result.status.value] += 1
            durations.append(result.response_time_ms)

    async def sampler(until: float) -> None:
        while time.monotonic() < until:
            samples.append(memory_mib(os.getpid(), exclude))
            if samples[-1][0] >= max(sample[0] for sample in samples):
                kinds_at_peak.clear()
                kinds_at_peak.update(process_kinds(os.getpid(), exclude))
            await asyncio.sleep(1.0)

    try:
        await worker(time.monotonic() + 5)  # warm-up: one worker, a few checks
        outcomes.clear()
        durations.clear()
        started = time.monotonic()
        until = started + duration_s
        workers = [worker(until) for _ in range(2 * DEFAULT_MAX_CONCURRENT)]
        await asyncio.gather(sampler(until), *workers)
        elapsed = time.monotonic() - started
    finally:
        await registry.aclose()
    done = sum(outcomes.values())
    up = outcomes["UP"]
    rss = [sample[0] for sample in samples]
    pss = [sample[1] for sample in samples]
    print(f"agent process before Chromium: RSS {idle_rss:.0f} MiB (PSS {idle_pss:.0f} MiB)")
    print(f"after the probe (browser idle): RSS {started_rss[0]:.0f} MiB over {started_rss[2]} processes")
    print(
        f"{done} checks in {elapsed:.1f}s with cap {DEFAULT_MAX_CONCURRENT}: "
        f"{up / elapsed * 60:.0f} successful checks/min ({done - up} failed: {dict(outcomes)})"
    )
    print(f"check duration: median {statistics.median(durations):.0f} ms, max {max(durations):.0f} ms")
    print(
        f"RSS agent + Chromium tree: peak {max(rss):.0f} MiB, mean {statistics.mean(rss):.0f} MiB "
        f"(PSS peak {max(pss):.0f} MiB) over {max(sample[2] for sample in samples)} processes, "
        f"{len(samples)} samples"
    )
    print("processes at the RSS peak: " + ", ".join(f"{n} {kind}" for kind, n in kinds_at_peak.most_common()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--duration", type=float, default=120.0, help="seconds of measured checks")
    parser.add_argument("--chromium", default=shutil.which("chromium"), help="Chromium executable")
    args = parser.parse_args()
    if not 5 <= args.duration <= 900:
        parser.error("--duration must be 5-900 s")
    if not args.chromium:
        sys.exit("chromium not found: apt-get install chromium, or pass --chromium")
    with tempfile.TemporaryDirectory(prefix="traxo-bench-") as tmp:
        root = Path(tmp)
        root.chmod(0o755)  # nginx's workers, as `nobody` under root, walk into it
        (root / "nginx").mkdir()
        with nginx(root / "nginx", PAGE) as url:
            nginx_pids = set(descendants(os.getpid())) - {os.getpid()}
            print(f"page {url}; Chromium {args.chromium}; {os.cpu_count()} CPUs")
            asyncio.run(measure(url, args.chromium, args.duration, nginx_pids))


if __name__ == "__main__":
    main()

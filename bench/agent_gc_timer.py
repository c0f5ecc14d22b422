"""Runs `traxo-agent` with a timer on every cyclic garbage collection (a diagnostic for bench/agent_soak.py).

At exit it writes one line per collection, "<generation> <milliseconds>", to $TRAXO_GC_TIMES
(default /tmp/traxo-agent-gc.txt). Usage:

    .venv/bin/python bench/agent_soak.py --agent-command ".venv/bin/python bench/agent_gc_timer.py"
"""

from __future__ import annotations

import atexit
import gc
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.cli import main

_times: list[tuple[int, float]] = []
_started = [0.0]


def _on_collection(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _started[0] = time.perf_counter()
    else:
        _times.append((int(info["generation"]), (time.perf_counter() - _started[0]) * 1000))


def _write() -> None:
    out = Path(os.environ.get("TRAXO_GC_TIMES", "/tmp/traxo-agent-gc.txt"))
    out.write_text("".join(f"{generation} {ms:.2f}\n" for generation, ms in _times))


if __name__ == "__main__":
    gc.callbacks.append(_on_collection)
    atexit.register(_write)
    sys.exit(main(sys.argv[1:]))

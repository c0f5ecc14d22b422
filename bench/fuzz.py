"""Issue 16: every endpoint fuzzed, longer than CI does. Runs tests/reliability/test_openapi_fuzz.py,
the same configuration (three identities, every check, the document's links, seeded resources of
every kind) with more examples per operation, a seed of your choice and the coverage phase (every
boundary and negation of each parameter, as A's owner; CI leaves it out), on PostgreSQL, and prints
schemathesis's reports and how long each identity's run took.

Usage: .venv/bin/python bench/fuzz.py [--max-examples 200] [--seed N] [--identity owner_a]
Needs PostgreSQL at 127.0.0.1:5432 (user postgres, trust auth, database test) or --database-url.
A run of 200 examples takes tens of minutes on two cores; the CI run takes 8.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODULE = "tests/reliability/test_openapi_fuzz.py"
IDENTITIES = ("viewer_a", "owner_b", "owner_a")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--max-examples", type=int, default=200, help="examples per operation (CI: 8)")
    parser.add_argument("--seed", type=int, default=int(time.time()), help="default: the clock's seconds")
    parser.add_argument("--identity", choices=IDENTITIES, action="append", help="only these (repeatable)")
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument(
        "--max-steps",
        type=int,
        default=None,
        help="steps a stateful scenario takes at most (schemathesis's default)",
    )
    args = parser.parse_args()

    env = {
        **os.environ,
        "TRAXO_TEST_DATABASE_URL": args.database_url,
        "TRAXO_TEST_ONLY_DATABASE": "1",
        "TRAXO_SCHEMATHESIS_MAX_EXAMPLES": str(args.max_examples),
        "TRAXO_SCHEMATHESIS_SEED": str(args.seed),
        "TRAXO_SCHEMATHESIS_COVERAGE": "1",  # the coverage phase too, which CI leaves out
        # A run's limit grows with its examples: CI's 300 s is for 8.
        "TRAXO_SCHEMATHESIS_TIMEOUT": str(max(300, 40 * args.max_examples)),
        **({"TRAXO_SCHEMATHESIS_MAX_STEPS": str(args.max_steps)} if args.max_steps else {}),
    }
    selected = args.identity or list(IDENTITIES)
    # The fuzz runs only: the pinned regressions beside them are CI's.
    names = " or ".join(f"answers_as_its_openapi_document_says and {name}" for name in selected)
    command = [sys.executable, "-m", "pytest", "-p", "no:xdist", "-q", "-s", MODULE, "-k", names]
    print(
        f"seed {args.seed}, {args.max_examples} examples per operation, as {', '.join(selected)}", flush=True
    )
    started = time.monotonic()
    code = subprocess.call(command, cwd=ROOT, env=env)
    print(f"\nfuzzing took {time.monotonic() - started:.0f} s; exit {code}")
    sys.exit(code)


if __name__ == "__main__":
    main()

"""Running the real commands (`traxo`, later `traxo-agent`) as subprocesses in tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx

from tests.waiting import eventually_sync

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def command_env(database_url: str | None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAXO_")}
    if database_url:
        env["TRAXO_DATABASE_URL"] = database_url
    env.update(extra)
    return env


def run_traxo(*args: str, env: dict[str, str], cwd: Path | None = None, timeout: float = 60) -> str:
    result = subprocess.run(
        [str(BIN / "traxo"), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, f"traxo {' '.join(args)} failed: {result.stdout}\n{result.stderr}"
    return result.stdout


def start_traxo(
    *args: str, env: dict[str, str], cwd: Path | None = None, log: Path | None = None
) -> subprocess.Popen[str]:
    """`traxo ARGS`, its output on a pipe the test reads (it must: a full pipe blocks the process),
    or into `log` for a process whose output nobody reads as it runs."""
    output = log.open("w") if log is not None else subprocess.PIPE
    try:
        return subprocess.Popen(
            [str(BIN / "traxo"), *args],
            env=env,
            cwd=cwd,
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
        )
    finally:
        if log is not None:
            output.close()  # type: ignore[union-attr]  # the child holds its own copy


def wait_healthy(
    base_url: str, process: subprocess.Popen[str], timeout: float = 30, path: str = "/readyz"
) -> None:
    """Until `path` answers 200: /readyz (the default) wants the schema at its head, /healthz the process."""

    def ready() -> bool:
        if process.poll() is not None:
            output = process.stdout.read() if process.stdout else ""
            raise AssertionError(f"process exited with {process.returncode}: {output}")
        try:
            return httpx.get(f"{base_url}{path}", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    eventually_sync(ready, timeout, f"{base_url} ready", 0.1)


def stop(process: subprocess.Popen[str], timeout: float = 10) -> str:
    process.terminate()
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        # A grandchild may still hold the output pipe; don't wait for it forever.
        try:
            output, _ = process.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            output = ""
        raise AssertionError(f"{process.args} did not stop within {timeout} s of SIGTERM") from None
    return output or ""

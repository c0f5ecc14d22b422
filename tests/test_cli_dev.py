"""`traxo dev` and `traxo api` where a newcomer trips: ports already taken, files kept from before."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.processes import BIN, command_env, free_port, run_traxo, start_traxo, stop, wait_healthy

REPO = Path(__file__).resolve().parents[1]


def run_fails(*args: str, cwd: Path, env: dict[str, str]) -> str:
    result = subprocess.run(
        [str(BIN / "traxo"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0, result.stdout
    return result.stdout + result.stderr


@pytest.mark.parametrize(
    ("flag", "what"),
    [("--port", "the API"), ("--grpc-port", "gRPC"), ("--agent-metrics-port", "metrics")],
)
def test_dev_with_a_taken_port_says_which_and_creates_nothing(tmp_path, flag, what):
    ports = {"--port": free_port(), "--grpc-port": free_port(), "--agent-metrics-port": free_port()}
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", ports[flag]))
        holder.listen()
        output = run_fails(
            "dev", *(part for item in ports.items() for part in (item[0], str(item[1]))),
            cwd=tmp_path, env=command_env(None),
        )  # fmt: skip
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert f"port {ports[flag]}" in lines[0] and what in lines[0] and f"{flag} PORT" in lines[0], output
    assert "traxo_" not in output and "API on" not in output
    assert list(tmp_path.iterdir()) == []  # no database, key or token was made


def test_api_with_a_taken_grpc_port_fails_before_serving(fresh_database_url, tmp_path):
    grpc_port = free_port()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", grpc_port))
        holder.listen()
        output = run_fails(
            "api", "--host", "127.0.0.1", "--port", str(free_port()), "--grpc-port", str(grpc_port),
            cwd=tmp_path, env=command_env(fresh_database_url),
        )  # fmt: skip
    assert f"port {grpc_port}" in output and "--grpc-port PORT" in output, output


def test_runtime_files_are_ignored_by_git():
    ignored = subprocess.run(
        ["git", "-C", str(REPO), "check-ignore", ".traxo/dev-agent.token", ".traxo/traxo.db"],
        capture_output=True,
        text=True,
    )
    assert ignored.stdout.split() == [".traxo/dev-agent.token", ".traxo/traxo.db"], ignored.stderr


def test_dev_moves_an_earlier_database_into_its_folder_and_keeps_it(tmp_path):
    """A checkout used before runtime files moved to .traxo/ keeps its users, keys and data."""
    earlier = command_env(f"sqlite:///{tmp_path / 'traxo.db'}")
    key = run_traxo(
        "users", "create", "--email", "old@example.com", "--name", "Old", env=earlier, cwd=tmp_path
    )
    key = key.strip().splitlines()[-1]
    (tmp_path / "traxo-dev-agent.token").write_text("traxo_agent_stale\n")

    port = free_port()
    dev = start_traxo(
        "dev", "--port", str(port), "--grpc-port", str(free_port()), "--no-agent",
        env=command_env(None), cwd=tmp_path,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, dev)
        keys = httpx.get(f"{base}/api/api-keys", headers={"Authorization": f"Bearer {key}"})
        assert keys.status_code == 200, keys.text
    finally:
        output = stop(dev, timeout=30)
    assert "Moved ./traxo.db" in output
    assert sorted(p.name for p in tmp_path.iterdir()) == [".traxo"]
    assert (tmp_path / ".traxo" / "dev-agent.token").read_text() == "traxo_agent_stale\n"

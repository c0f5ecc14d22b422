"""The `traxo` command as a user runs it: real processes, real sockets, the suite's database kind."""

from __future__ import annotations

import httpx

from tests.processes import command_env, free_port, run_traxo, start_traxo, stop, wait_healthy
from tests.waiting import eventually_sync


def test_users_create_prints_a_working_key_last(fresh_database_url):
    env = command_env(fresh_database_url)
    output = run_traxo("users", "create", "--email", "Cli@Example.com", "--name", "Cli User", env=env)
    key = output.strip().splitlines()[-1]
    assert key.startswith("traxo_")
    duplicate = run_traxo_fails("users", "create", "--email", "cli@example.com", "--name", "Again", env=env)
    assert "already exists" in duplicate

    port = free_port()
    api = start_traxo("api", "--host", "127.0.0.1", "--port", str(port), env=env)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_healthy(base, api)
        keys = httpx.get(f"{base}/api/api-keys", headers={"Authorization": f"Bearer {key}"})
        assert keys.status_code == 200 and len(keys.json()["data"]) == 1
        created = httpx.post(
            f"{base}/api/organization",
            json={"name": "Cli Org", "slug": "cli-org"},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert created.status_code == 201
        assert httpx.get(f"{base}/api/nope").json() == {"error": "Not found"}
    finally:
        stop(api)


def run_traxo_fails(*args: str, env: dict[str, str]) -> str:
    import subprocess

    from tests.processes import BIN

    result = subprocess.run([str(BIN / "traxo"), *args], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    return result.stdout + result.stderr


def test_replicas_starting_together_migrate_once_and_serve(fresh_database_url):
    env = command_env(fresh_database_url)
    ports = [free_port(), free_port()]
    replicas = [start_traxo("api", "--host", "127.0.0.1", "--port", str(p), env=env) for p in ports]
    try:
        for port, process in zip(ports, replicas, strict=True):
            wait_healthy(f"http://127.0.0.1:{port}", process)
    finally:
        for process in replicas:
            stop(process)


def test_api_no_migrate_leaves_the_schema_alone(fresh_database_url, tmp_path):
    env = command_env(fresh_database_url)
    port = free_port()
    # Every job fails without the schema, and logs why: into a file, so no pipe fills and blocks it.
    log = tmp_path / "api.log"
    api = start_traxo("api", "--host", "127.0.0.1", "--port", str(port), "--no-migrate", env=env, log=log)
    try:
        wait_healthy(f"http://127.0.0.1:{port}", api, path="/healthz")  # /readyz: 503 without the schema
        assert httpx.get(f"http://127.0.0.1:{port}/readyz").json()["status"] == "unready"
        response = httpx.get(
            f"http://127.0.0.1:{port}/api/organization", headers={"Authorization": "Bearer traxo_x"}
        )
        # No tables yet: a clean JSON 500, not a traceback.
        assert response.status_code == 500
        request_id = response.headers["X-Request-ID"]
        assert response.json() == {"error": "Internal server error", "requestId": request_id}
    finally:
        stop(api)
    assert "database schema is up to date" in run_traxo("migrate", env=env)


def test_dev_prints_a_usable_key_and_runs_checks(tmp_path):
    """The newcomer's path: `traxo dev`, the printed key, a monitor, and checks arriving from its agent."""
    env = command_env(None)  # the embedded default: a SQLite file in the working directory
    port, grpc_port, metrics_port = free_port(), free_port(), free_port()
    args = (
        "dev",
        "--port",
        str(port),
        "--grpc-port",
        str(grpc_port),
        "--agent-metrics-port",
        str(metrics_port),
    )
    dev = start_traxo(*args, env=env, cwd=tmp_path)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, dev)
        assert dev.stdout is not None
        key = None
        for line in dev.stdout:
            if line.strip().startswith("traxo_"):
                key = line.strip()
                break
        assert key, "traxo dev printed no key"
        headers = {"Authorization": f"Bearer {key}"}
        org = httpx.get(f"{base}/api/organization", headers=headers).json()["data"]
        assert org["plan"] == "ENTERPRISE"
        created = httpx.post(
            f"{base}/api/monitors",
            json={"name": "self", "url": f"{base}/healthz", "type": "HTTP", "interval": 15, "timeout": 5},
            headers=headers,
        )
        assert created.status_code == 201, created.text
        monitor_id = created.json()["data"]["id"]
        checks: list[dict[str, object]] = eventually_sync(
            lambda: httpx.get(f"{base}/api/monitors/{monitor_id}/checks", headers=headers).json()["data"],
            30,
            "a check from the dev agent",
            0.2,
        )
        assert checks[0]["status"] == "UP" and checks[0]["region"] == "us-east-1"
        heartbeat = httpx.post(
            f"{base}/api/monitors",
            json={"name": "cron", "type": "HEARTBEAT", "interval": 60},
            headers=headers,
        )
        assert heartbeat.status_code == 201, heartbeat.text
        # Handed out on the port actually served (not the default 8000) when TRAXO_PUBLIC_URL is unset.
        assert heartbeat.json()["data"]["heartbeatUrl"].startswith(f"{base}/api/heartbeat/hb_")
    finally:
        stop(dev, timeout=30)
    # Every runtime file (database, agent token, spool, assignments, locks) is in one ignored folder.
    assert [p.name for p in tmp_path.iterdir()] == [".traxo"]
    assert (tmp_path / ".traxo" / "traxo.db").exists()
    assert (tmp_path / ".traxo" / "dev-agent.token").stat().st_mode & 0o077 == 0

    again = start_traxo(*args, env=env, cwd=tmp_path)
    try:
        wait_healthy(base, again)
    finally:
        output = stop(again, timeout=30)
    assert "traxo_" not in output.replace("traxo_agent", "") and "Developer account exists" in output

"""`traxo dev`: API, gRPC, workers and one agent on the embedded SQLite default."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import click

from control_plane import migrate
from control_plane.commands.addresses import Listener, require_free, with_public_url
from control_plane.commands.support import load_settings, run_db, serve
from control_plane.core.timefmt import utcnow
from control_plane.db import Database
from control_plane.services import accounts, organizations
from control_plane.settings import Plan, Settings


@click.command("dev")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--grpc-port", default=50051, show_default=True, type=int)
@click.option("--agent/--no-agent", "run_agent", default=True, help="Start an agent for the default region.")
@click.option("--agent-metrics-port", default=9110, show_default=True, type=int)
def dev_command(host: str, port: int, grpc_port: int, run_agent: bool, agent_metrics_port: int) -> None:
    """Everything on the embedded SQLite default: API, gRPC, workers and one agent for the default
    region; prints an API key on first start."""
    listeners = [
        Listener("the API", host, port, "--port"),
        Listener("the agents' gRPC service", host, grpc_port, "--grpc-port"),
    ]
    if run_agent:
        listeners.append(
            Listener("the dev agent's metrics", "127.0.0.1", agent_metrics_port, "--agent-metrics-port")
        )
    require_free(listeners)  # before a key, a token or a database exists
    # A laptop's terminal reads text, whatever TRAXO_LOG_FORMAT says.
    settings = with_public_url(load_settings(), host, port).model_copy(update={"log_format": "text"})
    if "default_plan" not in settings.model_fields_set:
        # A laptop is not a customer: every plan rule would only get in the way (TRAXO_DEFAULT_PLAN wins).
        settings = settings.model_copy(update={"default_plan": Plan.ENTERPRISE})
    if "database_url" not in settings.model_fields_set:
        _adopt_files_from_the_working_directory()
    migrate.upgrade(settings.database_url)
    key = run_db(settings, lambda db: _ensure_dev_account(db, settings.default_plan))
    if key:
        click.echo("Created the developer account dev@localhost in organization 'dev'. Your API key:")
        click.echo(f"  {key}")
    else:
        click.echo("Developer account exists; use the key printed on first start, or `traxo users create`.")
    click.echo(f"API on http://{host}:{port}  (docs: http://{host}:{port}/api/docs)")
    agent = None
    if run_agent:
        region = settings.default_regions[0]
        token = _dev_agent_token(settings, region)
        agent = _start_dev_agent(f"{host}:{grpc_port}", token, region, agent_metrics_port)
        click.echo(f"Agent 'dev' serving {region} (metrics: http://127.0.0.1:{agent_metrics_port}/metrics)")
    sys.stdout.flush()

    async def stop_agent() -> None:
        if agent is not None and agent.poll() is None:
            agent.terminate()  # it flushes its results while gRPC is still up
            try:
                await asyncio.to_thread(agent.wait, 15)
            except subprocess.TimeoutExpired:
                agent.kill()

    try:
        serve(settings, host, port, grpc_address=(host, grpc_port), before_shutdown=stop_agent)
    finally:
        if agent is not None and agent.poll() is None:
            agent.kill()


# Everything `traxo dev` keeps on disk lives in one folder that git ignores, so that `git add .`
# never picks up the agent's token (the embedded database's default is there too).
RUNTIME_DIR = Path(".traxo")
DEV_AGENT_TOKEN_FILE = RUNTIME_DIR / "dev-agent.token"
DEV_AGENT_SPOOL = RUNTIME_DIR / "dev-agent-spool.db"  # its last assignments are kept beside it
# Where earlier versions kept them, in the working directory: moved into RUNTIME_DIR once.
_EARLIER_FILES = {
    Path("traxo.db"): RUNTIME_DIR / "traxo.db",
    Path("traxo.db-wal"): RUNTIME_DIR / "traxo.db-wal",
    Path("traxo.db-shm"): RUNTIME_DIR / "traxo.db-shm",
    Path("traxo-dev-agent.token"): DEV_AGENT_TOKEN_FILE,
    Path("traxo-dev-agent-spool.db"): DEV_AGENT_SPOOL,
    Path("traxo-dev-agent-spool.assignments.pb"): RUNTIME_DIR / "dev-agent-spool.assignments.pb",
}


def _adopt_files_from_the_working_directory() -> None:
    """Move an earlier layout's database, token and spool into RUNTIME_DIR, so nothing is lost."""
    if not Path("traxo.db").exists() or (RUNTIME_DIR / "traxo.db").exists():
        return
    RUNTIME_DIR.mkdir(exist_ok=True)
    for earlier, now in _EARLIER_FILES.items():
        if earlier.exists() and not now.exists():
            earlier.rename(now)
    Path("traxo.db.migrate-lock").unlink(missing_ok=True)
    click.echo(f"Moved ./traxo.db and the dev agent's files into {RUNTIME_DIR}/")


def _dev_agent_token(settings: Settings, region: str) -> str:
    """The dev agent's token, kept (mode 0600) beside the database so restarts reuse it."""
    saved = DEV_AGENT_TOKEN_FILE.read_text().strip() if DEV_AGENT_TOKEN_FILE.exists() else None
    raw = run_db(settings, lambda db: _valid_or_new_token(db, settings, region, saved))
    if raw != saved:
        RUNTIME_DIR.mkdir(exist_ok=True)
        DEV_AGENT_TOKEN_FILE.touch(mode=0o600)
        DEV_AGENT_TOKEN_FILE.write_text(raw + "\n")
    return raw


async def _valid_or_new_token(db: Database, settings: Settings, region: str, saved: str | None) -> str:
    from control_plane.agents import tokens

    async with db.session() as session:
        if saved and await tokens.authenticate_token(session, saved) is not None:
            return saved
        _, raw = await tokens.create_token(
            session, region=region, configured_regions=settings.regions, now=utcnow()
        )
        return raw


def _start_dev_agent(
    control_plane: str, token: str, region: str, metrics_port: int
) -> subprocess.Popen[bytes]:
    agent_bin = Path(sys.executable).with_name("traxo-agent")
    env = {**os.environ, "TRAXO_AGENT_TOKEN": token}
    command = [
        str(agent_bin) if agent_bin.exists() else "traxo-agent",
        "--control-plane",
        control_plane,
        "--region",
        region,
        "--name",
        "dev",
        "--spool",
        str(DEV_AGENT_SPOOL),
        "--metrics-host",
        "127.0.0.1",
        "--metrics-port",
        str(metrics_port),
        "--reconnect-max",
        "5",
    ]
    return subprocess.Popen(command, env=env)


async def _ensure_dev_account(db: Database, plan: Plan) -> str | None:
    from sqlalchemy import select

    from control_plane.models import User

    async with db.session() as session:
        if await session.scalar(select(User.id).where(User.email == "dev@localhost")):
            return None
        now = utcnow()  # a command's clock is the wall clock: it is the edge that reads it
        user, raw_key = await accounts.create_user(session, email="dev@localhost", name="Developer", now=now)
        await organizations.create_organization(
            session, user_id=user.id, name="Development", slug="dev", plan=plan, now=now
        )
        return raw_key

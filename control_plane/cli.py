"""The `traxo` command: serve the API, migrate, manage users; `traxo dev` for a laptop."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import click

from control_plane import migrate
from control_plane.db import Database
from control_plane.services import accounts, organizations, plans
from control_plane.services.errors import DomainError
from control_plane.settings import Plan, Settings


def _settings() -> Settings:
    try:
        return Settings()
    except Exception as exc:  # pydantic's ValidationError names the variable
        raise click.ClickException(f"invalid TRAXO_* setting: {exc}") from exc


@click.group()
def main() -> None:
    """Traxo control plane."""


@main.command("migrate")
def migrate_command() -> None:
    """Bring the database schema to the newest version."""
    settings = _settings()
    migrate.upgrade(settings.database_url)
    click.echo("database schema is up to date")


@main.command("api")
@click.option("--host", default="0.0.0.0", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--migrate/--no-migrate", "run_migrations", default=True, help="Migrate the schema on start.")
@click.option(
    "--workers/--no-workers", "run_workers", default=True, help="Run the background workers here too."
)
@click.option(
    "--grpc-port", type=int, default=None, help="Agents' gRPC port (default TRAXO_GRPC_PORT, 50051)."
)
@click.option("--grpc/--no-grpc", "run_grpc", default=True, help="Serve the agents' gRPC service.")
def api_command(
    host: str, port: int, run_migrations: bool, run_workers: bool, grpc_port: int | None, run_grpc: bool
) -> None:
    """Serve the REST API and the agents' gRPC service (and the background workers unless --no-workers)."""
    settings = _settings()
    if run_migrations:
        migrate.upgrade(settings.database_url)
    grpc_address = (host, settings.grpc_port if grpc_port is None else grpc_port) if run_grpc else None
    _serve(settings, host, port, workers=run_workers, grpc_address=grpc_address)


@main.command("worker")
def worker_command() -> None:
    """Run only the background workers (for deployments that separate them from the API)."""
    settings = _settings()
    migrate.upgrade(settings.database_url)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    asyncio.run(_run_workers(settings))


async def _run_workers(settings: Settings) -> None:
    import signal

    from control_plane.workers.jobs import build_runner

    db = Database(settings.database_url)
    await db.start()
    runner = build_runner(db, settings)
    await runner.start()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    click.echo("workers running; Ctrl-C to stop")
    await stopping.wait()
    await runner.stop()
    await db.dispose()


def _serve(
    settings: Settings,
    host: str,
    port: int,
    *,
    workers: bool = True,
    grpc_address: tuple[str, int] | None = None,
    before_shutdown: Callable[[], Awaitable[None]] | None = None,
) -> None:
    import uvicorn

    from control_plane.api.app import create_app

    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    app = create_app(settings, workers=workers, grpc_address=grpc_address, before_shutdown=before_shutdown)
    uvicorn.run(app, host=host, port=port, log_level=settings.log_level, access_log=False)


@main.group("users")
def users() -> None:
    """Manage users."""


@users.command("create")
@click.option("--email", required=True)
@click.option("--name", required=True)
def users_create(email: str, name: str) -> None:
    """Create a user; prints the new API key as the last line."""
    settings = _settings()
    migrate.upgrade(settings.database_url)
    user, raw_key = _run_db(settings, lambda db: _create_user(db, email, name))
    click.echo(f"created user {user} <{email}>")
    click.echo(raw_key)


async def _create_user(db: Database, email: str, name: str) -> tuple[str, str]:
    async with db.session() as session:
        user, raw_key = await accounts.create_user(session, email=email, name=name)
        return user.id, raw_key


def _run_db(settings: Settings, work):  # type: ignore[no-untyped-def]
    async def runner():  # type: ignore[no-untyped-def]
        db = Database(settings.database_url)
        try:
            return await work(db)
        except DomainError as exc:
            raise click.ClickException(exc.message) from exc
        finally:
            await db.dispose()

    return asyncio.run(runner())


@main.command("dev")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--grpc-port", default=50051, show_default=True, type=int)
@click.option("--agent/--no-agent", "run_agent", default=True, help="Start an agent for the default region.")
@click.option("--agent-metrics-port", default=9110, show_default=True, type=int)
def dev_command(host: str, port: int, grpc_port: int, run_agent: bool, agent_metrics_port: int) -> None:
    """Everything on the embedded SQLite default: API, gRPC, workers and one agent for the default
    region; prints an API key on first start."""
    settings = _settings()
    if "default_plan" not in settings.model_fields_set:
        # A laptop is not a customer: every plan rule would only get in the way (TRAXO_DEFAULT_PLAN wins).
        settings = settings.model_copy(update={"default_plan": Plan.ENTERPRISE})
    migrate.upgrade(settings.database_url)
    key = _run_db(settings, lambda db: _ensure_dev_account(db, settings.default_plan))
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
        _serve(settings, host, port, grpc_address=(host, grpc_port), before_shutdown=stop_agent)
    finally:
        if agent is not None and agent.poll() is None:
            agent.kill()


DEV_AGENT_TOKEN_FILE = Path("traxo-dev-agent.token")


def _dev_agent_token(settings: Settings, region: str) -> str:
    """The dev agent's token, kept (mode 0600) beside the database so restarts reuse it."""
    saved = DEV_AGENT_TOKEN_FILE.read_text().strip() if DEV_AGENT_TOKEN_FILE.exists() else None
    raw = _run_db(settings, lambda db: _valid_or_new_token(db, settings, region, saved))
    if raw != saved:
        DEV_AGENT_TOKEN_FILE.touch(mode=0o600)
        DEV_AGENT_TOKEN_FILE.write_text(raw + "\n")
    return raw


async def _valid_or_new_token(db: Database, settings: Settings, region: str, saved: str | None) -> str:
    from control_plane.agents import tokens

    async with db.session() as session:
        if saved and await tokens.authenticate_token(session, saved) is not None:
            return saved
        _, raw = await tokens.create_token(session, region=region, configured_regions=settings.regions)
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
        "traxo-dev-agent-spool.db",
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
        user, raw_key = await accounts.create_user(session, email="dev@localhost", name="Developer")
        await organizations.create_organization(
            session, user_id=user.id, name="Development", slug="dev", plan=plan
        )
        return raw_key


@main.group("orgs")
def orgs() -> None:
    """Operators' plan control when self-hosting."""


@orgs.command("list")
def orgs_list() -> None:
    """List organizations: id, slug, plan and monitor count."""
    settings = _settings()
    migrate.upgrade(settings.database_url)
    rows = _run_db(settings, _list_usage)
    table = [("ID", "SLUG", "PLAN", "MONITORS")]
    table += [(row.org_id, row.slug, row.plan, str(row.monitor_count)) for row in rows]
    widths = [max(len(line[column]) for line in table) for column in range(3)]
    for org_id, slug, plan, monitors in table:
        click.echo(f"{org_id:<{widths[0]}}  {slug:<{widths[1]}}  {plan:<{widths[2]}}  {monitors:>8}")
    if not rows:
        click.echo("(no organizations yet)")


async def _list_usage(db: Database) -> list[plans.OrganizationUsage]:
    async with db.session() as session:
        return await plans.list_usage(session)


@orgs.command("set-plan")
@click.option("--org", "slug_or_id", required=True, help="The organization's slug or id.")
@click.option(
    "--plan",
    required=True,
    metavar="|".join(Plan),
    callback=lambda _ctx, _param, value: _plan(value),
    help="The new plan (any case).",
)
def orgs_set_plan(slug_or_id: str, plan: Plan) -> None:
    """Change an organization's plan with the downgrade rules; prints what changed."""
    settings = _settings()
    migrate.upgrade(settings.database_url)
    change = _run_db(settings, lambda db: _set_plan(db, slug_or_id, plan))
    click.echo(change.describe())


def _plan(value: str) -> Plan:
    try:
        return Plan(value.strip().upper())
    except ValueError:
        raise click.BadParameter(f"unknown plan {value!r}; choose one of {', '.join(Plan)}") from None


async def _set_plan(db: Database, slug_or_id: str, plan: Plan) -> plans.PlanChange:
    async with db.session() as session:
        return await plans.set_plan(session, slug_or_id, plan, actor="operator")


@main.group("agents")
def agents_group() -> None:
    """Manage agent tokens (one per region, or an organization's private location)."""


@agents_group.command("create-token")
@click.option("--region", required=True, help="The region agents with this token serve.")
@click.option(
    "--org", "org", default=None, help="Organization slug or id: makes the region its private location."
)
def agents_create_token(region: str, org: str | None) -> None:
    """Create an agent token; prints it as the last line (it is not shown again)."""
    from control_plane.agents import tokens

    settings = _settings()
    migrate.upgrade(settings.database_url)

    async def create(db: Database) -> tuple[str, str]:
        async with db.session() as session:
            token, raw = await tokens.create_token(
                session, region=region, org=org, configured_regions=settings.regions
            )
            return token.id, raw

    token_id, raw = _run_db(settings, create)
    scope = f"private location of {org}" if org else "public region"
    click.echo(f"created agent token {token_id} for {region} ({scope})")
    click.echo(raw)


@agents_group.command("revoke-token")
@click.argument("token_id")
def agents_revoke_token(token_id: str) -> None:
    """Revoke an agent token: its agents are disconnected and cannot reconnect."""
    from control_plane.agents import tokens

    settings = _settings()

    async def revoke(db: Database) -> None:
        async with db.session() as session:
            await tokens.revoke_token(session, token_id)

    _run_db(settings, revoke)
    click.echo(f"revoked {token_id}")


@agents_group.command("list-tokens")
def agents_list_tokens() -> None:
    """List agent tokens (masked)."""
    from control_plane.agents import tokens

    settings = _settings()

    async def listing(db: Database) -> list[str]:
        async with db.session() as session:
            return [
                f"{t.id}  {t.region:<20} {t.org_id or 'public':<34} {t.prefix}...{t.last4}"
                f"{'  revoked' if t.revoked_at else ''}"
                for t in await tokens.list_tokens(session)
            ]

    for line in _run_db(settings, listing):
        click.echo(line)


if __name__ == "__main__":
    main()

"""The `traxo` command: serve the API, migrate, manage users; `traxo dev` for a laptop."""

from __future__ import annotations

import asyncio
import logging

import click

from control_plane import migrate
from control_plane.commands.addresses import Listener, require_free, with_public_url
from control_plane.commands.admin import agents_group, orgs
from control_plane.commands.apply import apply_command, export_command
from control_plane.commands.dev import dev_command
from control_plane.commands.support import load_settings, migrate_with_logs, run_db, serve, setup_logging
from control_plane.core.timefmt import utcnow
from control_plane.db import Database
from control_plane.services import accounts
from control_plane.settings import Settings

log = logging.getLogger("traxo.worker")


@click.group()
def main() -> None:
    """Traxo control plane."""


@main.command("migrate")
def migrate_command() -> None:
    """Bring the database schema to the newest version."""
    settings = load_settings()
    migrate_with_logs(settings)
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
    settings = load_settings()
    grpc_address = (host, settings.grpc_port if grpc_port is None else grpc_port) if run_grpc else None
    listeners = [Listener("the API", host, port, "--port")]
    if grpc_address is not None:
        listeners.append(Listener("the agents' gRPC service", *grpc_address, "--grpc-port"))
    require_free(listeners)
    settings = with_public_url(settings, host, port)
    if run_migrations:
        migrate_with_logs(settings)
    serve(settings, host, port, workers=run_workers, grpc_address=grpc_address)


@main.command("worker")
@click.option(
    "--migrate/--no-migrate",
    "run_migrations",
    default=True,
    help="Migrate the schema on start (off where a migration job does it: an old worker restarting "
    "after a newer release migrated could not).",
)
@click.option("--metrics-host", default="0.0.0.0", show_default=True)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Serve /metrics, /healthz and /readyz on this port (default: off).",
)
def worker_command(run_migrations: bool, metrics_host: str, metrics_port: int | None) -> None:
    """Run only the background workers (for deployments that separate them from the API)."""
    settings = load_settings()
    if metrics_port is not None:
        require_free([Listener("the worker's metrics", metrics_host, metrics_port, "--metrics-port")])
    if run_migrations:
        migrate_with_logs(settings)
    setup_logging(settings)
    asyncio.run(_run_workers(settings, (metrics_host, metrics_port) if metrics_port is not None else None))


async def _run_workers(settings: Settings, metrics_address: tuple[str, int] | None = None) -> None:
    import signal

    from control_plane.core.memory import freeze_startup_objects
    from control_plane.observability.worker_server import WorkerMetricsServer
    from control_plane.workers.jobs import build_runner

    db = Database(settings.database_url)
    await db.start()
    runner = build_runner(db, settings)
    await runner.start()
    freeze_startup_objects()
    metrics = WorkerMetricsServer(settings, db)
    if metrics_address is not None:
        port = await metrics.start(*metrics_address)
        # Logged, not printed: with TRAXO_LOG_FORMAT=json a pod's log must be JSON line after line.
        log.info("worker metrics on http://%s:%d/metrics", metrics_address[0], port)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    log.info("workers running; SIGTERM or Ctrl-C to stop")
    await stopping.wait()
    # Each job finishes the run it is in, within the shutdown deadline.
    await runner.stop(grace=settings.shutdown_deadline_seconds)
    await metrics.stop()
    await db.dispose()


@main.group("users")
def users() -> None:
    """Manage users."""


@users.command("create")
@click.option("--email", required=True)
@click.option("--name", required=True)
def users_create(email: str, name: str) -> None:
    """Create a user; prints the new API key as the last line."""
    settings = load_settings()
    migrate.upgrade(settings.database_url)
    user, raw_key = run_db(settings, lambda db: _create_user(db, email, name))
    click.echo(f"created user {user} <{email}>")
    click.echo(raw_key)


async def _create_user(db: Database, email: str, name: str) -> tuple[str, str]:
    async with db.session() as session:
        user, raw_key = await accounts.create_user(session, email=email, name=name, now=utcnow())
        return user.id, raw_key


main.add_command(dev_command)
main.add_command(orgs)
main.add_command(agents_group)
main.add_command(apply_command)
main.add_command(export_command)


if __name__ == "__main__":
    main()

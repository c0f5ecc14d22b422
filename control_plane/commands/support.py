"""What the `traxo` subcommands share: settings, a database for one command, serving the API."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import click

from control_plane.core.errors import DomainError
from control_plane.core.shutdown import Shutdown
from control_plane.db import Database, brief_error
from control_plane.observability.logs import configure_logging, secret_values
from control_plane.settings import Settings

log = logging.getLogger("traxo.migrate")


def load_settings() -> Settings:
    try:
        return Settings()
    except Exception as exc:  # pydantic's ValidationError names the variable
        raise click.ClickException(f"invalid TRAXO_* setting: {exc}") from exc


def run_db(settings: Settings, work: Callable[[Database], Awaitable[Any]]) -> Any:
    """Run `work` with a database of its own; a domain error becomes the command's error message."""

    async def runner() -> Any:
        db = Database(settings.database_url)
        try:
            return await work(db)
        except DomainError as exc:
            raise click.ClickException(exc.message) from exc
        finally:
            await db.dispose()

    return asyncio.run(runner())


def serve(
    settings: Settings,
    host: str,
    port: int,
    *,
    workers: bool = True,
    grpc_address: tuple[str, int] | None = None,
    before_shutdown: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Serve the API until SIGTERM, then drain within the shutdown deadline (serving.py)."""
    import uvicorn

    from control_plane.api.app import create_app
    from control_plane.api.http_protocol import ApiHttpProtocol
    from control_plane.commands.serving import run

    setup_logging(settings)
    shutdown = Shutdown(settings.shutdown_deadline_seconds, settings.shutdown_delay_seconds)
    app = create_app(
        settings,
        workers=workers,
        grpc_address=grpc_address,
        before_shutdown=before_shutdown,
        shutdown=shutdown,
    )
    # ApiHttpProtocol: limits on request lines and headers, and JSON for requests the app never sees.
    # log_config=None: uvicorn's records go through our handler (format, request ids, masking).
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        http=ApiHttpProtocol,
        log_level=settings.log_level,
        access_log=False,
        log_config=None,
    )
    run(config, shutdown)


def setup_logging(settings: Settings) -> None:
    configure_logging(settings.log_level, settings.log_format, secret_values(settings))


def migrate_with_logs(settings: Settings) -> None:
    """Migrate the schema with the process's logging set up first: a database that cannot be
    migrated (unreachable, a wrong password, a schema newer than this code) is one ERROR line in
    TRAXO_LOG_FORMAT, not a plain-text traceback of a hundred lines before the first log; exit 1.
    The traceback is logged at DEBUG (TRAXO_LOG_LEVEL=debug)."""
    from control_plane import migrate

    setup_logging(settings)
    try:
        migrate.upgrade(settings.database_url)
    except Exception as exc:
        log.debug("the migration's traceback", exc_info=True)
        log.error("cannot migrate the database: %s", brief_error(exc))
        sys.exit(1)

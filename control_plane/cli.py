"""The `traxo` command: serve the API, migrate, manage users; `traxo dev` for a laptop."""

from __future__ import annotations

import asyncio
import logging
import sys

import click

from control_plane import migrate
from control_plane.db import Database
from control_plane.services import accounts, organizations
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
def api_command(host: str, port: int, run_migrations: bool) -> None:
    """Serve the REST API."""
    settings = _settings()
    if run_migrations:
        migrate.upgrade(settings.database_url)
    _serve(settings, host, port)


def _serve(settings: Settings, host: str, port: int) -> None:
    import uvicorn

    from control_plane.api.app import create_app

    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    app = create_app(settings)
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
def dev_command(host: str, port: int) -> None:
    """Everything in one process on the embedded SQLite default; prints an API key on first start."""
    settings = _settings()
    migrate.upgrade(settings.database_url)
    key = _run_db(settings, _ensure_dev_account)
    if key:
        click.echo("Created the developer account dev@localhost in organization 'dev'. Your API key:")
        click.echo(f"  {key}")
    else:
        click.echo("Developer account exists; use the key printed on first start, or `traxo users create`.")
    click.echo(f"API on http://{host}:{port}  (docs: http://{host}:{port}/api/docs)")
    sys.stdout.flush()
    _serve(settings, host, port)


async def _ensure_dev_account(db: Database) -> str | None:
    from sqlalchemy import select

    from control_plane.models import User

    async with db.session() as session:
        if await session.scalar(select(User.id).where(User.email == "dev@localhost")):
            return None
        user, raw_key = await accounts.create_user(session, email="dev@localhost", name="Developer")
        await organizations.create_organization(
            session, user_id=user.id, name="Development", slug="dev", plan=Plan.ENTERPRISE
        )
        return raw_key


if __name__ == "__main__":
    main()

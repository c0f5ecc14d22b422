"""Operators' commands: organizations' plans and agent tokens."""

from __future__ import annotations

import click

from control_plane import migrate
from control_plane.commands.support import load_settings, run_db
from control_plane.core.timefmt import utcnow
from control_plane.db import Database
from control_plane.services import plans
from control_plane.settings import Plan


@click.group("orgs")
def orgs() -> None:
    """Operators' plan control when self-hosting."""


@orgs.command("list")
def orgs_list() -> None:
    """List organizations: id, slug, plan and monitor count."""
    settings = load_settings()
    migrate.upgrade(settings.database_url)
    rows = run_db(settings, _list_usage)
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
    settings = load_settings()
    migrate.upgrade(settings.database_url)
    change = run_db(settings, lambda db: _set_plan(db, slug_or_id, plan))
    click.echo(change.describe())


def _plan(value: str) -> Plan:
    try:
        return Plan(value.strip().upper())
    except ValueError:
        raise click.BadParameter(f"unknown plan {value!r}; choose one of {', '.join(Plan)}") from None


async def _set_plan(db: Database, slug_or_id: str, plan: Plan) -> plans.PlanChange:
    async with db.session() as session:
        return await plans.set_plan(session, slug_or_id, plan, actor="operator", now=utcnow())


@click.group("agents")
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

    settings = load_settings()
    migrate.upgrade(settings.database_url)

    async def create(db: Database) -> tuple[str, str]:
        async with db.session() as session:
            token, raw = await tokens.create_token(
                session, region=region, org=org, configured_regions=settings.regions, now=utcnow()
            )
            return token.id, raw

    token_id, raw = run_db(settings, create)
    scope = f"private location of {org}" if org else "public region"
    click.echo(f"created agent token {token_id} for {region} ({scope})")
    click.echo(raw)


@agents_group.command("revoke-token")
@click.argument("token_id")
def agents_revoke_token(token_id: str) -> None:
    """Revoke an agent token: its agents are disconnected and cannot reconnect."""
    from control_plane.agents import tokens

    settings = load_settings()

    async def revoke(db: Database) -> None:
        async with db.session() as session:
            await tokens.revoke_token(session, token_id, now=utcnow())

    run_db(settings, revoke)
    click.echo(f"revoked {token_id}")


@agents_group.command("list-tokens")
def agents_list_tokens() -> None:
    """List agent tokens (masked)."""
    from control_plane.agents import tokens

    settings = load_settings()

    async def listing(db: Database) -> list[str]:
        async with db.session() as session:
            return [
                f"{t.id}  {t.region:<20} {t.org_id or 'public':<34} {t.prefix}...{t.last4}"
                f"{'  revoked' if t.revoked_at else ''}"
                for t in await tokens.list_tokens(session)
            ]

    for line in run_db(settings, listing):
        click.echo(line)

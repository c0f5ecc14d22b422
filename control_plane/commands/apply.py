"""`traxo apply` and `traxo export`: an organization's monitors, alert channels, maintenance windows
and status pages as a YAML file kept in git, through the public API (docs/config-as-code.md)."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import click

from control_plane.config_as_code.client import ApiClient, ApiError
from control_plane.config_as_code.executor import ApplyFailed, apply_plan
from control_plane.config_as_code.export import ExportRefused, export_text
from control_plane.config_as_code.loader import InvalidFile, load_file
from control_plane.config_as_code.planner import make_plan
from control_plane.config_as_code.state import read_state

EXIT_CHANGES = 2


def _api_options(command: Callable[..., Any]) -> Callable[..., Any]:
    command = click.option(
        "--api-key",
        envvar="TRAXO_API_KEY",
        show_envvar=True,
        help="The API key. Prefer TRAXO_API_KEY: a key on the command line is seen by `ps` and kept "
        "in shell history.",
    )(command)
    return click.option(
        "--api-url",
        envvar="TRAXO_API_URL",
        show_envvar=True,
        default="http://127.0.0.1:8000",
        show_default=True,
        help="The Traxo API to talk to.",
    )(command)


def _client(api_url: str, api_key: str | None) -> ApiClient:
    if not api_key:
        # An error (1), not a usage error (2): with --detailed-exitcode, 2 means "changes".
        _fail("no API key: set TRAXO_API_KEY (or pass --api-key)")
    return ApiClient(api_url, api_key)


@click.command("apply")
@click.option(
    "-f", "--file", "path", required=True, type=click.Path(path_type=Path), help="traxo.yaml"
)  # a file that cannot be read is an error (1) of its own, not click's usage error (2)
@click.option("--dry-run", is_flag=True, help="Print the plan and change nothing.")
@click.option("--prune", is_flag=True, help="Delete what the organization has and the file does not.")
@click.option(
    "--detailed-exitcode",
    is_flag=True,
    help="With --dry-run: exit 2 when there are changes (0 when none, 1 on an error), as terraform plan.",
)
@click.option(
    "--replace-secrets",
    is_flag=True,
    help="Send alert channels' secret-bearing configs even when their masks match (a secret changed "
    "but kept its last four characters).",
)
@_api_options
def apply_command(
    path: Path,
    dry_run: bool,
    prune: bool,
    detailed_exitcode: bool,
    replace_secrets: bool,
    api_url: str,
    api_key: str | None,
) -> None:
    """Make the organization of the key match FILE: print the plan, then create, update and (with
    --prune) delete. ${ENV_VAR} in the file's strings is replaced by the variable's value."""
    if detailed_exitcode and not dry_run:
        raise click.UsageError("--detailed-exitcode goes with --dry-run")
    try:
        loaded = load_file(path, os.environ)
    except InvalidFile as exc:
        _fail(f"{path} is not a valid traxo file:\n{exc}")
    client = _client(api_url, api_key)

    async def run() -> int:
        async with client:
            state = await read_state(client)
            plan = make_plan(loaded, state, prune=prune, replace_secrets=replace_secrets)
            click.echo(f"Plan for {loaded.filename} against {client.base_url}:")
            for change in plan.changes:
                click.echo(f"  {change.describe()}")
            click.echo(plan.summary())
            if dry_run:
                return EXIT_CHANGES if detailed_exitcode and plan.writes else 0
            if not plan.writes:
                return 0
            applied = await apply_plan(client, plan, state, loaded.filename, click.echo)
            counts = {
                action: sum(1 for c in applied if c.action == action)
                for action in ("create", "update", "delete")
            }
            created, updated, deleted = counts["create"], counts["update"], counts["delete"]
            click.echo(f"Applied: {created} created, {updated} updated, {deleted} deleted.")
            return 0

    try:
        code = asyncio.run(run())
    except InvalidFile as exc:
        _fail(f"{path} cannot be applied:\n{exc}")
    except ApplyFailed as exc:
        done = "; ".join(change.describe() for change in exc.applied)
        _fail(f"{exc}\n" + (f"Applied before it: {done}." if done else "Nothing was applied."))
    except ApiError as exc:
        _fail(f"reading the organization failed: {exc}")
    sys.exit(code)


@click.command("export")
@click.option(
    "-o", "--output", type=click.Path(path_type=Path, dir_okay=False), help="Write here (default: stdout)."
)
@_api_options
def export_command(output: Path | None, api_url: str, api_key: str | None) -> None:
    """Write the organization's monitors, alert channels, maintenance windows and status pages as a
    traxo.yaml (secrets as ${ENV_VAR} placeholders), which `traxo apply` finds unchanged."""
    client = _client(api_url, api_key)

    async def run() -> str:
        async with client:
            return export_text(await read_state(client), client.base_url)

    try:
        text = asyncio.run(run())
    except (ApiError, ExportRefused) as exc:
        _fail(f"cannot export: {exc}")
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text)
        click.echo(f"wrote {output}", err=True)


def _fail(message: str) -> NoReturn:
    click.echo(f"Error: {message}", err=True)
    sys.exit(1)

"""`traxo orgs list|set-plan` and `traxo dev`'s default plan, run as real processes."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess

import httpx
import pytest
from sqlalchemy import select

from control_plane import migrate
from control_plane.core.timefmt import utcnow
from control_plane.db import Database
from control_plane.models import AuditEvent, Monitor, Organization
from control_plane.services import accounts, organizations
from control_plane.settings import Plan, async_database_url
from tests.billing_support import MonitorSpec, add_monitors
from tests.processes import BIN, command_env, free_port, run_traxo, wait_healthy


def run_traxo_fails(*args: str, env: dict[str, str]) -> str:
    result = subprocess.run([str(BIN / "traxo"), *args], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0, result.stdout
    return result.stdout + result.stderr


async def _seed(url: str) -> dict[str, object]:
    """Two organizations: acme on BUSINESS with seven monitors (one BROWSER), tiny on FREE."""
    db = Database(async_database_url(url))
    try:
        ids: dict[str, object] = {}
        for email, slug, plan in (
            ("a@acme.example", "acme", Plan.BUSINESS),
            ("t@tiny.example", "tiny", Plan.FREE),
        ):
            async with db.session() as session:
                user, _ = await accounts.create_user(session, email=email, name=slug, now=utcnow())
                org = await organizations.create_organization(
                    session, user_id=user.id, name=slug.title(), slug=slug, plan=plan, now=utcnow()
                )
                ids[slug] = org.id
        ids["monitors"] = await add_monitors(
            db,
            str(ids["acme"]),
            MonitorSpec(type="BROWSER", interval=60),
            *[MonitorSpec(interval=30)] * 6,
        )
        return ids
    finally:
        await db.dispose()


async def _read(url: str) -> tuple[dict[str, str], dict[str, tuple[bool, int]], list[AuditEvent]]:
    db = Database(async_database_url(url))
    try:
        async with db.session() as session:
            org_plans = {org.slug: org.plan for org in await session.scalars(select(Organization))}
            monitors = {m.id: (m.is_active, m.interval) for m in await session.scalars(select(Monitor))}
            audit = list(await session.scalars(select(AuditEvent)))
        return org_plans, monitors, audit
    finally:
        await db.dispose()


@pytest.fixture
def seeded(fresh_database_url: str) -> tuple[dict[str, str], dict[str, object]]:
    env = command_env(fresh_database_url)
    migrate.upgrade(fresh_database_url)  # in-process: `traxo migrate` itself is test_cli.py's
    return env, asyncio.run(_seed(fresh_database_url))


def test_orgs_list_shows_id_slug_plan_and_monitor_count(seeded):
    env, ids = seeded
    lines = run_traxo("orgs", "list", env=env).strip().splitlines()
    assert lines[0].split() == ["ID", "SLUG", "PLAN", "MONITORS"]
    assert [line.split() for line in lines[1:]] == [
        [ids["acme"], "acme", "BUSINESS", "7"],
        [ids["tiny"], "tiny", "FREE", "0"],
    ]


def test_orgs_list_on_an_empty_database(fresh_database_url):
    output = run_traxo("orgs", "list", env=command_env(fresh_database_url))
    assert "(no organizations yet)" in output


def test_set_plan_downgrades_with_the_rules_and_says_what_changed(seeded, fresh_database_url):
    env, ids = seeded
    monitor_ids = ids["monitors"]
    output = run_traxo("orgs", "set-plan", "--org", "acme", "--plan", "FREE", env=env)
    assert "Plan of organization acme changed from BUSINESS to FREE." in output
    assert f"Paused 1 BROWSER monitor ({monitor_ids[0]})" in output
    assert (
        f"Paused 1 monitor over the FREE limit of 5 active monitors, newest first ({monitor_ids[6]})"
        in output
    )
    assert "Raised the interval of 7 monitors to the FREE minimum of 300 s" in output

    org_plans, monitors, audit = asyncio.run(_read(fresh_database_url))
    assert org_plans == {"acme": "FREE", "tiny": "FREE"}
    assert [monitors[m] for m in monitor_ids] == [(False, 300)] + [(True, 300)] * 5 + [(False, 300)]
    [event] = audit
    assert (event.action, event.actor, event.org_id) == ("plan.changed", "operator", ids["acme"])

    lines = run_traxo("orgs", "list", env=env).splitlines()
    assert lines[1].split()[1:] == ["acme", "FREE", "7"]


def test_set_plan_takes_an_id_and_any_case(seeded, fresh_database_url):
    env, ids = seeded
    output = run_traxo("orgs", "set-plan", "--org", str(ids["tiny"]), "--plan", "enterprise", env=env)
    assert "changed from FREE to ENTERPRISE" in output and "No monitor needed a change" in output
    again = run_traxo("orgs", "set-plan", "--org", "tiny", "--plan", "ENTERPRISE", env=env)
    assert "already on plan ENTERPRISE; nothing changed" in again
    assert asyncio.run(_read(fresh_database_url))[0]["tiny"] == "ENTERPRISE"


def test_set_plan_refuses_an_unknown_organization_or_plan(seeded, fresh_database_url):
    env, _ = seeded
    unknown_org = run_traxo_fails("orgs", "set-plan", "--org", "nope", "--plan", "PRO", env=env)
    assert "Organization 'nope' not found" in unknown_org
    unknown_plan = run_traxo_fails("orgs", "set-plan", "--org", "acme", "--plan", "GOLD", env=env)
    assert "unknown plan 'GOLD'; choose one of FREE, PRO, BUSINESS, ENTERPRISE" in unknown_plan
    assert asyncio.run(_read(fresh_database_url))[0] == {"acme": "BUSINESS", "tiny": "FREE"}


def _start_dev(tmp_path, env: dict[str, str]) -> tuple[subprocess.Popen[str], str, str]:
    port = free_port()
    # Its own process group: `traxo dev` starts children (an agent) that must stop with it.
    dev = subprocess.Popen(
        [str(BIN / "traxo"), "dev", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, dev)
        assert dev.stdout is not None
        key = next(line.strip() for line in dev.stdout if line.strip().startswith("traxo_"))
    except BaseException:
        _stop_dev(dev)
        raise
    return dev, base, key


def _stop_dev(dev: subprocess.Popen[str]) -> None:
    os.killpg(dev.pid, signal.SIGTERM)
    try:
        dev.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(dev.pid, signal.SIGKILL)
        dev.communicate()


def _new_org_plan(tmp_path, env: dict[str, str], base: str) -> str:
    output = run_traxo(
        "users", "create", "--email", "new@example.com", "--name", "New", env=env, cwd=tmp_path
    )
    headers = {"Authorization": f"Bearer {output.strip().splitlines()[-1]}"}
    created = httpx.post(f"{base}/api/organization", json={"name": "New", "slug": "new-org"}, headers=headers)
    assert created.status_code == 201, created.text
    return httpx.get(f"{base}/api/organization", headers=headers).json()["data"]["plan"]


@pytest.mark.slow
def test_dev_gives_new_organizations_enterprise(tmp_path):
    env = command_env(None)
    dev, base, key = _start_dev(tmp_path, env)
    try:
        dev_org = httpx.get(f"{base}/api/organization", headers={"Authorization": f"Bearer {key}"})
        assert dev_org.json()["data"]["plan"] == "ENTERPRISE"
        assert _new_org_plan(tmp_path, env, base) == "ENTERPRISE"
        assert (httpx.get(f"{base}/api/billing", headers={"Authorization": f"Bearer {key}"})).json() == {
            "plan": "ENTERPRISE",
            "monitorCount": 0,
            "monitorLimit": None,
        }
    finally:
        _stop_dev(dev)


@pytest.mark.slow
def test_dev_respects_an_explicit_default_plan(tmp_path):
    env = command_env(None, TRAXO_DEFAULT_PLAN="PRO")
    dev, base, key = _start_dev(tmp_path, env)
    try:
        dev_org = httpx.get(f"{base}/api/organization", headers={"Authorization": f"Bearer {key}"})
        assert dev_org.json()["data"]["plan"] == "PRO"
        assert _new_org_plan(tmp_path, env, base) == "PRO"
    finally:
        _stop_dev(dev)

"""The OpenAPI document tells the truth: schemathesis, bounded, sends what the served document allows
(and what it forbids) to a real `traxo api` on PostgreSQL, and every answer must be no 5xx, a
documented status, and a body and headers of the documented schema.

The server's organization has monitors, checks, incidents, a screenshot, members and a spare key,
and the path parameters name them most of the time, so the operations reach real resources and
not only their 404s. Bounded to about a minute on two cores: 100 examples per operation, one seed.
TRAXO_SCHEMATHESIS_MAX_EXAMPLES and TRAXO_SCHEMATHESIS_SEED widen or vary a run by hand.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from control_plane import migrate
from control_plane.core.ids import new_id
from control_plane.core.timefmt import utcnow
from control_plane.db import Database
from control_plane.models import Incident, Role
from control_plane.results import ResultIn, record_results
from control_plane.services import accounts, organizations, team
from control_plane.services.monitors import new_heartbeat_token
from control_plane.settings import Plan, async_database_url
from tests.billing_support import PUBLIC_KEY, SECRET_KEY, WEBHOOK_SECRET, FakeRevenueCat
from tests.databases import scratch_database
from tests.factories import monitor_row
from tests.processes import BIN, command_env
from tests.waiting import eventually

pytestmark = [pytest.mark.postgres_only, pytest.mark.slow]

MAX_EXAMPLES = int(os.environ.get("TRAXO_SCHEMATHESIS_MAX_EXAMPLES", "100"))
SEED = int(os.environ.get("TRAXO_SCHEMATHESIS_SEED", "20250615"))
# A run takes about a minute; past this something is wrong (a hung request), not slow.
TIMEOUT_SECONDS = 240
# What the document promises: no 5xx, only documented statuses, bodies and headers as documented,
# and wrong methods answered 405 with the Allow list the document implies. (That every operation
# with the bearer scheme refuses requests without a key is test_openapi_document's: here the
# address's budget for failed authentications runs out, and a 429 is not what `ignored_auth` wants.)
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "unsupported_method",
    "allow_header_conformance",
)
# schemathesis's command, with ast.parse serialized: CPython 3.11 keeps ast.parse's recursion counter
# in state that threads share (python/cpython#106905), and hypothesis (describing filters in the
# worker thread) and werkzeug (routing in the main thread) parse at the same time now and then,
# failing with "SystemError: AST constructor recursion depth mismatch".
RUN_SCHEMATHESIS = """
import ast, sys, threading
_parse, _lock = ast.parse, threading.RLock()
def _serialized_parse(*args, **kwargs):
    with _lock:
        return _parse(*args, **kwargs)
ast.parse = _serialized_parse
from schemathesis.cli import schemathesis
sys.exit(schemathesis())
"""
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16
LISTENING = re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")


@dataclass
class Seeded:
    """What the server's one organization holds, by the path parameters that name it."""

    key: str
    monitors: list[str]
    disposable_monitors: list[str]  # for DELETE, so the others stay
    checks: list[str]
    screenshot: tuple[str, str]  # a BROWSER monitor's check that has one
    members: list[str]  # the owner's (a 403 to remove) and two others
    spare_keys: list[str]  # never the key schemathesis authenticates with
    invitable_emails: list[str]


async def seed(url: str) -> Seeded:
    db = Database(async_database_url(url))
    try:
        async with db.session() as session:
            owner, key = await accounts.create_user(
                session, email="owner@conformance.example", name="Owner", now=utcnow()
            )
            org = await organizations.create_organization(
                session,
                user_id=owner.id,
                name="Conformance",
                slug="conformance",
                plan=Plan.ENTERPRISE,
                now=utcnow(),
            )
            spare_key, _ = await accounts.create_key(session, owner.id, "Spare", now=utcnow())
            members = [membership.id for membership, _ in await team.list_members(session, org.id)]
            for name in ("admin", "viewer"):
                user, _ = await accounts.create_user(
                    session, email=f"{name}@conformance.example", name=name, now=utcnow()
                )
                role = Role.ADMIN if name == "admin" else Role.VIEWER
                membership, _ = await team.invite_member(
                    session, org.id, email=user.email, role=role, now=utcnow()
                )
                members.append(membership.id)
            invitable = []
            for index in range(3):
                user, _ = await accounts.create_user(
                    session,
                    email=f"newcomer{index}@conformance.example",
                    name=f"Newcomer {index}",
                    now=utcnow(),
                )
                invitable.append(user.email)

        now = datetime.now(UTC)
        rows = [
            monitor_row(org.id, name="API", regions=["us-east-1", "eu-west-1"], created_at=now),
            monitor_row(
                org.id, name="Cron", type="HEARTBEAT", url=None, heartbeat_token=new_heartbeat_token()
            ),
            monitor_row(org.id, name="LLM app", type="LLM", url=None),
            monitor_row(org.id, name="Checkout flow", type="BROWSER", url="https://example.com/"),
            monitor_row(
                org.id, name="Database", type="TCP", url="tcp://db.example.com:5432", is_active=False
            ),
        ]
        disposable = [monitor_row(org.id, name=f"Disposable {index}") for index in range(3)]
        async with db.session() as session:
            session.add_all([*rows, *disposable])
            await session.commit()
        http_monitor, browser_monitor = rows[0], rows[3]

        results = [
            ResultIn(
                id=new_id("chk"),
                monitor_id=http_monitor.id,
                region=("us-east-1", "eu-west-1")[index % 2],
                status="UP" if index % 5 else "DOWN",
                checked_at=now - timedelta(minutes=5 * index),
                response_time=80.0 + index,
                status_code=200 if index % 5 else 503,
                error_kind=None if index % 5 else "http_status",
                error_message=None if index % 5 else "HTTP 503 (expected 200)",
                dns=5.0,
                tcp=7.5,
                tls=12.25,
                ttfb=40.0 + index,
                download=3.0,
                total=80.0 + index,
                size=2048,
            )
            for index in range(30)
        ]
        screenshot = ResultIn(
            id=new_id("chk"),
            monitor_id=browser_monitor.id,
            region="us-east-1",
            status="DOWN",
            checked_at=now,
            response_time=1500.0,
            error_kind="assertion",
            error_message="expect_text: 'Pay' not found",
            screenshot_png=PNG,
        )
        async with db.session() as session:
            await record_results(session, [*results, screenshot])
        async with db.session() as session:
            session.add_all(
                [
                    Incident(
                        id=new_id("inc"),
                        org_id=org.id,
                        monitor_id=http_monitor.id,
                        started_at=now - timedelta(days=1),
                        resolved_at=now - timedelta(days=1) + timedelta(minutes=15),
                        cause="Connection timeout",
                    ),
                    Incident(
                        id=new_id("inc"),
                        org_id=org.id,
                        monitor_id=http_monitor.id,
                        started_at=now - timedelta(minutes=3),
                        cause="HTTP 503 (expected 200)",
                    ),
                ]
            )
            await session.commit()
        return Seeded(
            key=key,
            monitors=[row.id for row in rows],
            disposable_monitors=[row.id for row in disposable],
            checks=[screenshot.id, results[0].id, results[5].id],
            screenshot=(browser_monitor.id, screenshot.id),
            members=members,
            spare_keys=[spare_key.id],
            invitable_emails=invitable,
        )
    finally:
        await db.dispose()


@pytest.fixture(scope="module")
def conformance_database(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database of the server's own, of the suite's kind (this module runs on PostgreSQL)."""
    with scratch_database(database_url, tmp_path_factory.mktemp("conformance"), "traxo_conformance") as url:
        migrate.upgrade(url)
        yield url


@pytest.fixture(scope="module")
async def revenuecat() -> AsyncIterator[FakeRevenueCat]:
    fake = FakeRevenueCat()
    await fake.start()
    yield fake
    await fake.stop()


@dataclass(frozen=True)
class LiveApi:
    base_url: str
    seeded: Seeded
    log_path: Path


@pytest.fixture(scope="module")
async def live_api(
    conformance_database: str, revenuecat: FakeRevenueCat, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[LiveApi]:
    seeded = await seed(conformance_database)
    directory = tmp_path_factory.mktemp("conformance_api")
    log_path = directory / "api.log"
    env = command_env(
        conformance_database,
        TRAXO_LOG_LEVEL="info",
        TRAXO_REGIONS="us-east-1,eu-west-1",
        TRAXO_REVENUECAT_API_URL=revenuecat.url,
        TRAXO_REVENUECAT_SECRET_KEY=SECRET_KEY,
        TRAXO_REVENUECAT_PUBLIC_KEY=PUBLIC_KEY,
        TRAXO_REVENUECAT_WEBHOOK_SECRET=WEBHOOK_SECRET,
        TRAXO_REVENUECAT_TIMEOUT_SECONDS="2",
        # The plan's budget would stop the run after 5,000 requests a minute; the failed-authentication
        # budget stays as it is, and its 429s are documented answers too.
        TRAXO_RATE_LIMIT_MULTIPLIER="100",
    )
    args = ["api", "--host", "127.0.0.1", "--port", "0", "--no-workers", "--no-grpc", "--no-migrate"]
    with log_path.open("w") as log:
        process = await asyncio.create_subprocess_exec(
            str(BIN / "traxo"), *args, env=env, cwd=directory, stdout=log, stderr=asyncio.subprocess.STDOUT
        )
    try:

        def listening_port() -> int | None:
            text = log_path.read_text(errors="replace")
            if process.returncode is not None:
                raise AssertionError(f"traxo api exited with {process.returncode}:\n{text}")
            match = LISTENING.search(text)
            return int(match[1]) if match else None

        port = await eventually(listening_port, within=60, what="traxo api to listen")
        base_url = f"http://127.0.0.1:{port}"

        async def ready() -> bool:
            async with httpx.AsyncClient() as client:
                try:
                    return (await client.get(f"{base_url}/readyz", timeout=1)).status_code == 200
                except httpx.HTTPError:
                    return False

        await eventually(ready, within=30, what="traxo api to answer /readyz")
        yield LiveApi(base_url, seeded, log_path)
    finally:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise AssertionError("traxo api did not stop within 10 s of SIGTERM") from None


def _toml(value: object) -> str:
    """A TOML value: JSON's strings, numbers, booleans and arrays are TOML's too."""
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)


def schemathesis_config(api: LiveApi) -> str:
    seeded = api.seeded
    dictionaries = {
        "monitors": seeded.monitors,
        "disposable_monitors": seeded.disposable_monitors,
        "checks": seeded.checks,
        "members": seeded.members,
        "spare_keys": seeded.spare_keys,
        "emails": seeded.invitable_emails,
        "screenshot_monitor": [seeded.screenshot[0]],
        "screenshot_check": [seeded.screenshot[1]],
    }
    # Mostly the seeded resources; now and then anything the schema allows (their 404s).
    parameters = {
        "path.monitor_id": {"dictionary": "monitors", "probability": 0.8},
        "path.check_id": {"dictionary": "checks", "probability": 0.8},
        "path.member_id": {"dictionary": "members", "probability": 0.8},
        "path.key_id": {"dictionary": "spare_keys", "probability": 0.8},
        "body.email": {"dictionary": "emails", "probability": 0.5},
    }
    operations = {
        "DELETE /api/monitors/{monitor_id}": {
            "path.monitor_id": {"dictionary": "disposable_monitors", "probability": 0.8}
        },
        "GET /api/monitors/{monitor_id}/checks/{check_id}/screenshot": {
            "path.monitor_id": {"dictionary": "screenshot_monitor", "probability": 0.8},
            "path.check_id": {"dictionary": "screenshot_check", "probability": 0.8},
        },
    }
    lines = [
        f"seed = {SEED}",
        "workers = 1",  # the server needs the other core
        "color = false",
        "[generation]",
        f"max-examples = {MAX_EXAMPLES}",
        'database = "none"',
        # The key is configured; mutating it would only spend the address's failed-authentication
        # budget (60 a minute), after which every such request is a 429 and tests nothing.
        "with-security-parameters = false",
        "[checks]",
        "enabled = false",
        *(f"{check}.enabled = true" for check in CHECKS),
        "[auth.openapi.bearerAuth]",
        f"bearer = {_toml(seeded.key)}",
        "[auth.openapi.revenueCatWebhook]",
        f"api_key = {_toml(WEBHOOK_SECRET)}",
        "[dictionaries]",
        *(f"{name} = {_toml({'values': values})}" for name, values in dictionaries.items()),
        "[parameters]",
        *(f"{_toml(name)} = {_toml(binding)}" for name, binding in parameters.items()),
    ]
    for name, bindings in operations.items():
        lines += ["[[operations]]", f"include-name = {_toml(name)}", f"parameters = {_toml(bindings)}"]
    return "\n".join(lines) + "\n"


async def test_the_server_answers_as_its_openapi_document_says(live_api: LiveApi, tmp_path: Path) -> None:
    config = tmp_path / "schemathesis.toml"
    config.write_text(schemathesis_config(live_api))
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        str(BIN / "python"),
        "-c",
        RUN_SCHEMATHESIS,
        "--config-file",
        str(config),
        "run",
        f"{live_api.base_url}/api/openapi.json",
        cwd=tmp_path,
        env={**os.environ, "NO_COLOR": "1"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), timeout=TIMEOUT_SECONDS)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError(f"schemathesis did not finish within {TIMEOUT_SECONDS} s") from None
    report = output.decode(errors="replace")
    print(f"schemathesis took {time.monotonic() - started:.1f} s\n{report}")  # shown with -s or on failure
    server_log = "\n".join(live_api.log_path.read_text(errors="replace").splitlines()[-100:])
    assert process.returncode == 0, (
        f"schemathesis found problems:\n{report}\n\nserver log (end):\n{server_log}"
    )

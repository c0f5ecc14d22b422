"""Logs: JSON lines with request ids from a real `traxo api`, no secret in them; request ids on every
answer (the fast paths', the middleware's errors, the routes'); the masking filter itself."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
import secrets
import signal
import subprocess
from pathlib import Path

import grpc
import httpx
import pytest
from sqlalchemy import text

from control_plane import migrate
from control_plane.agents import tokens
from control_plane.api.app import create_app
from control_plane.core.timefmt import utcnow
from control_plane.db import Database
from control_plane.observability.logs import (
    REQUEST_ID,
    JsonFormatter,
    MaskSecrets,
    SecretMasker,
    request_id_from,
    secret_values,
)
from control_plane.settings import Settings
from tests.conftest import make_account
from tests.operations.support import ApiProcess, terminated_once_logged
from tests.processes import BIN, command_env, free_port
from tests.waiting import eventually
from traxo_protocol.traxo.agent.v1 import agent_pb2 as pb
from traxo_protocol.traxo.agent.v1.agent_pb2_grpc import AgentServiceStub

# Once, in the SQLite pass: what a process logs does not depend on its database.
pytestmark = [pytest.mark.slow, pytest.mark.one_pass]

HEX_ID = re.compile(r"[0-9a-f]{32}")


async def test_a_json_logging_api_logs_request_ids_and_no_secret(
    fresh_database_url: str, tmp_path: Path
) -> None:
    smtp_password, revenuecat_key, metrics_token = (secrets.token_urlsafe(16) for _ in range(3))
    env = command_env(
        fresh_database_url,
        TRAXO_LOG_FORMAT="json",
        TRAXO_ACCESS_LOG="true",
        TRAXO_LOG_LEVEL="info",
        TRAXO_SMTP_PASSWORD=smtp_password,
        TRAXO_REVENUECAT_SECRET_KEY=revenuecat_key,
        TRAXO_METRICS_TOKEN=metrics_token,
        TRAXO_REGIONS="us-east-1",
    )
    # The key and token made here, not by `traxo users create` and `traxo agents create-token`:
    # two processes' start-up less.
    await asyncio.to_thread(migrate.upgrade, fresh_database_url)
    db = Database(fresh_database_url)
    try:
        key = (await make_account(db, "logs@example.com", "Logs")).key
        async with db.session() as session:
            _, agent_token = await tokens.create_token(session, region="us-east-1", now=utcnow())
    finally:
        await db.dispose()
    bad_key = "traxo_" + secrets.token_urlsafe(32)
    webhook_secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    api = ApiProcess("api", env, tmp_path, "--no-workers")
    await api.start()
    try:
        await api.ready()
        owner = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(base_url=api.base_url, timeout=10) as client:

            async def call(method: str, path: str, request_id: str, **kwargs: object) -> httpx.Response:
                headers = {**kwargs.pop("headers", {}), "X-Request-ID": request_id}  # type: ignore[dict-item]
                response = await client.request(method, path, headers=headers, **kwargs)  # type: ignore[arg-type]
                assert response.headers["X-Request-ID"] == request_id
                return response

            created = await call(
                "POST", "/api/organization", "req-org", json={"name": "Logs", "slug": "logs"}, headers=owner
            )
            assert created.status_code == 201, created.text
            assert (
                await call(
                    "GET", "/api/monitors", "req-bad-key", headers={"Authorization": f"Bearer {bad_key}"}
                )
            ).status_code == 401
            assert (
                await call(
                    "GET",
                    "/api/monitors",
                    "req-agent-token",
                    headers={"Authorization": f"Bearer {agent_token}"},
                )
            ).status_code == 401
            heartbeat = await call(
                "POST", "/api/monitors", "req-heartbeat", headers=owner,
                json={"name": "Nightly", "type": "HEARTBEAT", "interval": 3600},
            )  # fmt: skip
            assert heartbeat.status_code == 201, heartbeat.text
            ping_url = heartbeat.json()["data"]["heartbeatUrl"]
            hb_token = ping_url.rstrip("/").rsplit("/", 1)[-1]
            assert hb_token.startswith("hb_")
            assert (await call("GET", f"/api/heartbeat/{hb_token}", "req-ping")).status_code == 200
            channel = await call(
                "POST", "/api/alert-channels", "req-channel", headers=owner,
                json={
                    "name": "Ops", "type": "WEBHOOK",
                    "config": {"url": "https://example.com/hook", "secret": webhook_secret},
                },
            )  # fmt: skip
            assert channel.status_code == 201, channel.text
            # A client id that is too long, or not visible ASCII, is replaced by a new one.
            for unusable in (b"x" * 129, b"two words", "caf\u00e9".encode()):
                answer = await client.get("/healthz", headers={"X-Request-ID": unusable})
                assert HEX_ID.fullmatch(answer.headers["X-Request-ID"]), answer.headers
        async with grpc.aio.insecure_channel(f"127.0.0.1:{api.grpc_port}") as channel_:
            registered = await AgentServiceStub(channel_).Register(
                pb.RegisterRequest(name="logs", region="us-east-1", version="1"),
                metadata=(("authorization", f"Bearer {agent_token}"),),
                timeout=10,
            )
        assert registered.agent_id

        async def logged_the_ping() -> bool:
            return '"req-ping"' in api.log()

        await eventually(logged_the_ping, 5, "the ping's access line")
        api.signal(signal.SIGTERM)
        code, _ = await api.exited(30)
        assert code == 0
    finally:
        await api.stop()

    log = api.log()
    # Only the log records count: `traxo api`'s click output (none here) would not be JSON.
    records = [json.loads(line) for line in log.splitlines() if line.strip()]
    assert records and all({"time", "level", "logger", "message"} <= set(record) for record in records)
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", record["time"]) for record in records)
    for secret in (
        key,
        bad_key,
        agent_token,
        hb_token,
        webhook_secret,
        smtp_password,
        revenuecat_key,
        metrics_token,
    ):
        assert secret not in log
        assert secret[-12:] not in log  # nor a telling part of it
    access = {record["request_id"]: record for record in records if record["logger"] == "traxo.access"}
    for request_id in (
        "req-org",
        "req-bad-key",
        "req-agent-token",
        "req-heartbeat",
        "req-ping",
        "req-channel",
    ):
        assert request_id in access, sorted(access)
    assert access["req-ping"]["path"] == "/api/heartbeat/hb_***"
    assert access["req-bad-key"]["status"] == 401 and access["req-org"]["method"] == "POST"
    assert any("registered" in record["message"] for record in records)  # the gRPC side logged too
    assert any(record["message"].startswith("shutdown: done") for record in records)


async def test_every_answer_carries_the_request_id(api: httpx.AsyncClient, settings: Settings) -> None:
    sent = {"X-Request-ID": "client-id-42"}
    answers = [
        await api.post("/api/ai/ingest/mon_unknown", json={}, headers=sent),  # the ingest's fast path
        await api.post("/api/monitors", content=b"x" * (settings.max_body_bytes + 1), headers=sent),  # 413
        await api.delete("/api/team/invite", headers=sent),  # ApiMiddleware's 405
        await api.get("/api/monitors", headers=sent),  # a route's 401
        await api.get("/api/nothing-here", headers=sent),  # routing's 404
        await api.get("/status/no-such-page", headers=sent),  # the public pages' path
        await api.options(
            "/api/ai/ingest/mon_x",
            headers={**sent, "Origin": "https://app.example", "Access-Control-Request-Method": "POST"},
        ),  # CORS preflight
    ]
    assert [answer.headers.get("X-Request-ID") for answer in answers] == ["client-id-42"] * len(answers)
    assert [answer.status_code for answer in answers] == [400, 413, 405, 401, 404, 404, 204]
    generated = {(await api.get("/healthz")).headers["X-Request-ID"] for _ in range(3)}
    assert len(generated) == 3 and all(HEX_ID.fullmatch(value) for value in generated)


async def test_a_request_s_records_and_its_500_carry_its_id(settings: Settings, runtime: object) -> None:
    app = create_app(settings, runtime)  # type: ignore[arg-type]
    seen: list[tuple[str, str | None]] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append((record.getMessage(), getattr(record, "request_id", None) or REQUEST_ID.get()))

    @app.get("/api/boom")
    async def boom() -> None:
        logging.getLogger("traxo.test").warning("about to fail")
        raise RuntimeError("internals")

    handler = Capture()
    logging.getLogger().addHandler(handler)
    try:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.get("/api/boom", headers={"X-Request-ID": "quote-me"})
    finally:
        logging.getLogger().removeHandler(handler)
    assert response.status_code == 500
    assert response.json() == {"error": "Internal server error", "requestId": "quote-me"}
    assert response.headers["X-Request-ID"] == "quote-me"
    assert ("about to fail", "quote-me") in seen
    assert ("unhandled error on GET /api/boom", "quote-me") in seen


def test_request_ids_are_kept_when_valid_and_made_otherwise() -> None:
    assert request_id_from(b"abc-DEF_123.~!") == "abc-DEF_123.~!"
    assert request_id_from(b"a" * 128) == "a" * 128
    for unusable in (None, b"", b"a" * 129, b"with space", b"tab\there", b"caf\xc3\xa9", b"nul\x00"):
        assert HEX_ID.fullmatch(request_id_from(unusable)), unusable


def _masked(
    message: str, *args: object, literals: tuple[str, ...] = (), **extra: object
) -> logging.LogRecord:
    record = logging.LogRecord("t", logging.INFO, __file__, 1, message, args or None, None)
    record.__dict__.update(extra)
    MaskSecrets(SecretMasker(literals)).filter(record)
    return record


def test_the_filter_masks_every_kind_of_secret() -> None:
    key = "traxo_" + secrets.token_urlsafe(32)
    agent_token = "traxo_agent_" + secrets.token_urlsafe(32)
    hb = "hb_" + secrets.token_urlsafe(24)
    whsec = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    cases = {
        f"key {key} used": "key traxo_*** used",
        f"token {agent_token}!": "token traxo_***!",
        f"GET /api/heartbeat/{hb}/start": "GET /api/heartbeat/hb_***/start",
        f"secret={whsec}": "secret=***",
        f"signing with {whsec}": "signing with whsec_***",
        "Authorization: Bearer abc.def-123": "Authorization: Bearer ***",
        "connect postgresql://traxo:s3cr3t@db:5432/traxo": "connect postgresql://traxo:***@db:5432/traxo",
        "redis://:hunter2@cache:6379/0": "redis://:***@cache:6379/0",
        "host=db password=hunter2 user=x": "host=db password=*** user=x",
        "/confirm?token=abcdef123456&x=1": "/confirm?token=***&x=1",
        "File traxo_protocol/traxo/agent/v1/agent_pb2.py": "File traxo_protocol/traxo/agent/v1/agent_pb2.py",
    }
    for message, expected in cases.items():
        assert _masked(message).getMessage() == expected
    # In the arguments, in extra fields and in an exception's traceback too.
    assert _masked("auth %s", f"Bearer {key}").getMessage() == "auth Bearer ***"
    assert _masked("x", path=f"/api/heartbeat/{hb}").path == "/api/heartbeat/hb_***"  # type: ignore[attr-defined]
    try:
        raise ValueError(f"bad key {key}")
    except ValueError:
        import sys

        record = logging.LogRecord("t", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())
    MaskSecrets(SecretMasker()).filter(record)
    formatted = JsonFormatter().format(record)
    assert key not in formatted and "traxo_***" in json.loads(formatted)["exception"]


def test_settings_secrets_are_masked_wherever_they_appear() -> None:
    settings = Settings(
        database_url="postgresql://traxo:pg-passw0rd@db/traxo",
        smtp_password="smtp-passw0rd",
        revenuecat_secret_key="sk_live_abcdef",
        revenuecat_webhook_secret="rc-hook-secret",
    )
    found = secret_values(settings)
    assert {"pg-passw0rd", "smtp-passw0rd", "sk_live_abcdef", "rc-hook-secret"} <= set(found)
    record = _masked("login with smtp-passw0rd then sk_live_abcdef (pg-passw0rd)", literals=tuple(found))
    assert record.getMessage() == "login with *** then *** (***)"
    assert (
        _masked("the word passw", literals=("passw",)).getMessage() == "the word passw"
    )  # too short to mask


async def test_the_agent_logs_json_lines_without_its_token(tmp_path: Path) -> None:
    token = "traxo_agent_" + secrets.token_urlsafe(32)
    log_path = tmp_path / "agent.log"
    args = [
        str(BIN / "traxo-agent"),
        "--control-plane", f"127.0.0.1:{free_port()}",  # nothing listens: it keeps reconnecting
        "--region", "us-east-1",
        "--spool", str(tmp_path / "spool"),
        "--metrics-host", "127.0.0.1",
        "--metrics-port", "0",
        "--log-format", "json",
    ]  # fmt: skip
    env = {**command_env(None), "TRAXO_AGENT_TOKEN": token}
    code = await terminated_once_logged(args, env, log_path, "reconnecting in", within=20, exit_within=15)
    assert code == 0
    text = log_path.read_text()
    records = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert records and all({"time", "level", "logger", "message"} <= set(record) for record in records)
    assert any(record["logger"] == "agent.connection" for record in records)
    assert token not in text


@pytest.mark.parametrize("command", [("api", "--host", "127.0.0.1"), ("worker",), ("migrate",)])
def test_a_database_that_cannot_be_migrated_is_one_json_line_without_its_password(command) -> None:
    # Migrating on start ran before the logs were set up: a hundred lines of plain-text traceback.
    password = secrets.token_urlsafe(16)
    url = f"postgresql://traxo:{password}@127.0.0.1:{free_port()}/traxo"  # nothing listens there
    args = (
        [*command, "--port", str(free_port()), "--grpc-port", str(free_port())]
        if command[0] == "api"
        else command
    )
    result = subprocess.run(
        [str(BIN / "traxo"), *args],
        env=command_env(url, TRAXO_LOG_FORMAT="json"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1, result.stderr
    records = [json.loads(line) for line in result.stderr.splitlines()]  # every line is JSON
    errors = [record for record in records if record["level"] == "ERROR"]
    assert len(errors) == 1 and errors[0]["message"].startswith("cannot migrate the database: "), records
    assert "Connection refused" in errors[0]["message"] or "connect" in errors[0]["message"]
    assert password not in result.stderr + result.stdout


async def test_the_ai_ingest_s_writer_logs_no_request_s_id(api, world, database) -> None:
    # Its writers start on the first event, inside that request: they copied its context, and every
    # later group's failure was logged with that first request's id, long after it was answered.
    from tests.ai.support import MINIMAL_EVENT, insert_llm_monitor

    monitor = await insert_llm_monitor(database, world.org_a)
    ingest = f"/api/ai/ingest/{monitor.id}"
    event = MINIMAL_EVENT
    first = await api.post(ingest, json=event, headers={"X-Request-ID": "the-first-request"})
    assert first.status_code == 200, first.text
    seen: list[tuple[str, str | None]] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append((record.getMessage(), getattr(record, "request_id", None) or REQUEST_ID.get()))

    postgres = not database.is_sqlite
    async with database.engine.begin() as connection:  # the next insert fails, as in tests/ai
        if postgres:
            await connection.execute(
                text(
                    "CREATE FUNCTION traxo_test_refuse_log() RETURNS trigger LANGUAGE plpgsql AS "
                    "$$ BEGIN RAISE EXCEPTION 'refused'; END $$"
                )
            )
            await connection.execute(
                text(
                    "CREATE TRIGGER traxo_test_refuse_log BEFORE INSERT ON ai_events "
                    "FOR EACH ROW EXECUTE FUNCTION traxo_test_refuse_log()"
                )
            )
        else:
            await connection.execute(
                text(
                    "CREATE TRIGGER traxo_test_refuse_log BEFORE INSERT ON ai_events "
                    "BEGIN SELECT RAISE(ABORT, 'refused'); END"
                )
            )
    handler = Capture()
    logging.getLogger("control_plane.ai.ingest").addHandler(handler)
    try:
        failed = await api.post(ingest, json=event, headers={"X-Request-ID": "the-second-request"})
    finally:
        logging.getLogger("control_plane.ai.ingest").removeHandler(handler)
        async with database.engine.begin() as connection:
            await connection.execute(
                text("DROP TRIGGER traxo_test_refuse_log" + (" ON ai_events" if postgres else ""))
            )
            if postgres:
                await connection.execute(text("DROP FUNCTION traxo_test_refuse_log()"))
    assert failed.status_code == 503
    failures = [request_id for message, request_id in seen if "requests failed" in message]
    # A group is many requests': its writer's records are no request's.
    assert failures == [None], seen


async def test_traxo_worker_with_json_logs_writes_only_json_lines(
    fresh_database_url: str, tmp_path: Path
) -> None:
    # It printed "worker metrics on ..." and "workers running" to stdout: a pod's log (stdout and
    # stderr together) then had plain lines among the JSON ones.
    port = free_port()
    log_path = tmp_path / "worker.log"
    args = [str(BIN / "traxo"), "worker", "--metrics-host", "127.0.0.1", "--metrics-port", str(port)]
    env = command_env(fresh_database_url, TRAXO_LOG_FORMAT="json")
    code = await terminated_once_logged(args, env, log_path, "workers running", within=30, exit_within=30)
    assert code == 0
    records = [json.loads(line) for line in log_path.read_text().splitlines()]  # every line is JSON
    messages = [record["message"] for record in records]
    assert f"worker metrics on http://127.0.0.1:{port}/metrics" in messages, messages

"""Item 5: a real `traxo api` (with its workers and gRPC), logging at DEBUG in the text format with
the access log, is handed every kind of secret through its API, its CLI and its settings, made to
use each (pings, ingest, each channel's test delivery to a local receiver, mails, the billing
webhook, /metrics, an agent's registration), and then its whole output (stdout and stderr) is
searched for each secret's value: none may appear, nor a telling part of one. Reads of channels show
their secrets masked. (tests/operations/test_logs.py does the same for the JSON format without workers.)
"""

from __future__ import annotations

import asyncio
import base64
import re
import secrets
import signal
import subprocess
from pathlib import Path

import grpc
import httpx
import pytest
from sqlalchemy import select

from control_plane import migrate
from control_plane.db import Database
from control_plane.models.status_pages import PageSubscriber
from tests.alert_receivers import http_recorder, smtp_receiver
from tests.conftest import make_account
from tests.operations.support import ApiProcess
from tests.processes import BIN, command_env, free_port
from tests.waiting import eventually
from traxo_protocol.traxo.agent.v1 import agent_pb2 as pb
from traxo_protocol.traxo.agent.v1.agent_pb2_grpc import AgentServiceStub

# Run once, in the SQLite pass: the masking is the log handler's, whichever database; both drivers'
# statement loggers are held at WARNING alike (observability/logs.py).
pytestmark = [pytest.mark.slow, pytest.mark.one_pass]

TOKEN = re.compile(r"token=([A-Za-z0-9_%-]+)")


def _secret(prefix: str = "") -> str:
    return prefix + secrets.token_urlsafe(18)


async def test_no_secret_reaches_the_logs_of_a_whole_run(fresh_database_url: str, tmp_path: Path) -> None:
    smtp_user, smtp_password = "mailer", _secret()
    revenuecat_key, revenuecat_hook, metrics_token = _secret("sk_"), _secret(), _secret()
    slack_secret, hook_path, apprise_password = _secret(), _secret(), _secret()
    routing_key = secrets.token_hex(16)  # 32 letters and digits, as PagerDuty's
    webhook_secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    bad_key = "traxo_" + secrets.token_urlsafe(32)
    with smtp_receiver(credentials=(smtp_user, smtp_password)) as smtp:
        async with http_recorder(status=202) as receiver:
            env = command_env(
                fresh_database_url,
                TRAXO_LOG_LEVEL="debug",
                TRAXO_ACCESS_LOG="true",
                TRAXO_ALERTS_ALLOW_PRIVATE_URLS="true",  # the receivers are on loopback
                TRAXO_ALERT_SEND_TIMEOUT_SECONDS="3",
                TRAXO_SMTP_HOST="127.0.0.1",
                TRAXO_SMTP_PORT=str(smtp.port),
                TRAXO_SMTP_SECURITY="none",
                TRAXO_SMTP_USERNAME=smtp_user,
                TRAXO_SMTP_PASSWORD=smtp_password,
                TRAXO_STATUS_PAGE_NOTIFY_SECONDS="1",
                TRAXO_PAGERDUTY_EVENTS_URL=f"{receiver.url}/pagerduty",
                TRAXO_REVENUECAT_API_URL=f"{receiver.url}/revenuecat",
                TRAXO_REVENUECAT_SECRET_KEY=revenuecat_key,
                TRAXO_REVENUECAT_WEBHOOK_SECRET=revenuecat_hook,
                TRAXO_METRICS_TOKEN=metrics_token,
                TRAXO_DNS_RESOLVER=f"127.0.0.1:{free_port()}",  # nothing answers: the look-up fails
                TRAXO_REGIONS="us-east-1",
            )
            await asyncio.to_thread(migrate.upgrade, fresh_database_url)
            db = Database(fresh_database_url)
            try:
                first_key = (await make_account(db, "owner@example.com", "Owner")).key
            finally:
                await db.dispose()
            api = ApiProcess("api", env, tmp_path)
            await api.start()
            try:
                await api.ready(60)
                made = await _use_every_secret(api, env, smtp, receiver.url, first_key, bad_key, {
                    "slack": slack_secret, "hook_path": hook_path, "apprise": apprise_password,
                    "routing_key": routing_key, "webhook_secret": webhook_secret,
                    "revenuecat_hook": revenuecat_hook, "metrics": metrics_token,
                })  # fmt: skip
                # The channels' test deliveries reached the receiver: the secrets were used.
                assert any(request.path.startswith(f"/{hook_path}") for request in receiver.requests)
                assert any(request.path == "/pagerduty" for request in receiver.requests)
                api.signal(signal.SIGTERM)
                code, _ = await api.exited(30)
                assert code == 0, api.log()[-3000:]
            finally:
                await api.stop()
    log = api.log()
    assert "DEBUG" in log and "POST /api/alert-channels" in log  # the run was logged, in detail
    every = {
        **made,
        "bad API key": bad_key,
        "SMTP password": smtp_password,
        "RevenueCat secret key": revenuecat_key,
        "RevenueCat webhook secret": revenuecat_hook,
        "metrics token": metrics_token,
        "Slack URL's secret": slack_secret,
        "webhook URL's secret path": hook_path,
        "Apprise URL's password": apprise_password,
        "PagerDuty routing key": routing_key,
        "webhook signing secret": webhook_secret,
    }
    leaked = {what: secret for what, secret in every.items() if secret in log or secret[-12:] in log}
    assert not leaked, _where(log, leaked)


def _where(log: str, leaked: dict[str, str]) -> str:
    lines = []
    for what, secret in leaked.items():
        line = next((line for line in log.splitlines() if secret in line or secret[-12:] in line), "")
        lines.append(f"{what}: {line[:300]}")
    return "\n".join(lines)


async def _unsubscribe_token(database_url: str) -> str:
    db = Database(database_url)
    try:
        async with db.session() as session:
            token = await session.scalar(select(PageSubscriber.unsubscribe_token))
    finally:
        await db.dispose()
    assert token
    return str(token)


async def _use_every_secret(
    api: ApiProcess,
    env: dict[str, str],
    smtp: object,
    receiver_url: str,
    first_key: str,
    bad_key: str,
    given: dict[str, str],
) -> dict[str, str]:
    """Creates and uses every kind of secret; returns those the server made, by what they are."""
    made: dict[str, str] = {"first API key": first_key}
    owner = {"Authorization": f"Bearer {first_key}"}
    port = receiver_url.rsplit(":", 1)[1]
    async with httpx.AsyncClient(base_url=api.base_url, timeout=20) as client:

        async def call(
            method: str, path: str, expected: int | tuple[int, ...], **kwargs: object
        ) -> httpx.Response:
            response = await client.request(method, path, **kwargs)  # type: ignore[arg-type]
            wanted = expected if isinstance(expected, tuple) else (expected,)
            assert response.status_code in wanted, (method, path, response.status_code, response.text[:300])
            return response

        await call("POST", "/api/organization", 201, json={"name": "Logs", "slug": "logs"}, headers=owner)
        key = (await call("POST", "/api/api-keys", 201, json={"name": "CI"}, headers=owner)).json()["data"][
            "key"
        ]
        made["second API key"] = key
        await call("GET", "/api/monitors", 200, headers={"Authorization": f"Bearer {key}"})
        await call("GET", "/api/monitors", 401, headers={"Authorization": f"Bearer {bad_key}"})
        await call("GET", "/api/monitors", 401, headers={"Authorization": bad_key})  # no scheme

        heartbeat = await call(
            "POST",
            "/api/monitors",
            201,
            headers=owner,
            json={"name": "Nightly", "type": "HEARTBEAT", "interval": 3600},
        )
        hb_token = heartbeat.json()["data"]["heartbeatUrl"].rstrip("/").rsplit("/", 1)[-1]
        made["heartbeat token"] = hb_token
        await call("GET", f"/api/heartbeat/{hb_token}/start", 200)
        await call("POST", f"/api/heartbeat/{hb_token}/1", 200, content=b"job log: exit 1")
        await call("GET", f"/api/heartbeat/{hb_token}", 200)

        llm = await call("POST", "/api/monitors", 201, headers=owner, json={"name": "Chat", "type": "LLM"})
        event = {
            "provider": "openai",
            "model": "gpt-4o",
            "promptTokens": 1,
            "completionTokens": 1,
            "latencyMs": 5,
        }
        await call("POST", f"/api/ai/ingest/{llm.json()['data']['id']}", 200, json=event)

        channels = {
            "WEBHOOK": {
                "url": f"{receiver_url}/{given['hook_path']}/hook",
                "secret": given["webhook_secret"],
            },
            "SLACK": {"webhookUrl": f"https://127.0.0.1:{port}/services/T000/B000/{given['slack']}"},
            "PAGERDUTY": {"routingKey": given["routing_key"]},
            # Its password is the secret: Apprise logs the URL at DEBUG, the password masked.
            "APPRISE": {"urls": [f"json://traxo:{given['apprise']}@127.0.0.1:{port}/apprise"]},
            "EMAIL": {"recipients": ["ops@example.com"]},
        }
        ids = []
        for kind, config in channels.items():
            created = await call(
                "POST",
                "/api/alert-channels",
                201,
                headers=owner,
                json={"name": kind, "type": kind, "config": config},
            )
            ids.append(created.json()["data"]["id"])
        for channel_id in ids:
            await call("POST", f"/api/alert-channels/{channel_id}/test", 200, headers=owner)
        read = (await call("GET", "/api/alert-channels", 200, headers=owner)).text
        for secret in (given["slack"], given["routing_key"], given["apprise"], given["webhook_secret"]):
            assert secret not in read and secret[-12:] not in read  # masked on read

        page = {
            "name": "Logs Status",
            "slug": "logs-status",
            "monitors": [],
            "customDomain": "status.logs.example",
        }
        await call("POST", "/api/status-pages", 201, headers=owner, json=page)
        verification = await call("POST", "/api/status-pages/logs-status/verify-domain", 200, headers=owner)
        made["domain verification token"] = verification.json()["data"]["verificationToken"].removeprefix(
            "traxo-verify="
        )
        await call("GET", "/api/status-pages/logs-status/verify-domain", 200, headers=owner)
        await call("POST", "/status/logs-status/subscribe", 202, json={"email": "reader@example.com"})

        async def mailed() -> list[str]:
            bodies = [m.get_body(("plain",)) for m in smtp.messages]  # type: ignore[attr-defined]
            texts = [body.get_content() for body in bodies if body is not None]
            return [text for text in texts if "subscribe/confirm?" in text]  # not the channel's test mail

        (mail,) = await eventually(mailed, 30, "the confirmation mail")
        confirm_token = TOKEN.search(mail[mail.index("subscribe/confirm?") :])[1]  # type: ignore[index]
        unsubscribe_token = await _unsubscribe_token(env["TRAXO_DATABASE_URL"])  # mailed with each notice
        made["confirmation token"], made["unsubscribe token"] = confirm_token, unsubscribe_token
        await call("GET", f"/status/logs-status/subscribe/confirm?token={confirm_token}", 200)
        await call("GET", f"/status/logs-status/unsubscribe?token={unsubscribe_token}", 200)
        await call("POST", f"/status/logs-status/unsubscribe?token={unsubscribe_token}", 200)

        hook = {"event": {"type": "TEST", "app_user_id": "org_x", "id": "evt_1"}, "api_version": "1.0"}
        await call(
            "POST",
            "/api/billing/webhook",
            (200, 400),
            json=hook,
            headers={"Authorization": given["revenuecat_hook"]},
        )
        await call(
            "POST",
            "/api/billing/webhook",
            401,
            json=hook,
            headers={"Authorization": "wrong-" + given["revenuecat_hook"]},
        )
        await call("POST", "/api/billing/portal", (200, 502), headers=owner)
        await call("GET", "/metrics", 200, headers={"Authorization": f"Bearer {given['metrics']}"})
        await call("GET", "/metrics", 401, headers={"Authorization": f"Bearer x{given['metrics']}"})

    created = await asyncio.to_thread(
        subprocess.run,
        [str(BIN / "traxo"), "agents", "create-token", "--region", "us-east-1"],
        env=env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    agent_token = created.stdout.strip().splitlines()[-1]
    assert agent_token.startswith("traxo_agent_")
    made["agent token"] = agent_token
    async with grpc.aio.insecure_channel(f"127.0.0.1:{api.grpc_port}") as channel:
        registered = await AgentServiceStub(channel).Register(
            pb.RegisterRequest(name="logs", region="us-east-1", version="1"),
            metadata=(("authorization", f"Bearer {agent_token}"),),
            timeout=10,
        )
    assert registered.agent_id
    return made

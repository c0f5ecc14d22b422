"""`traxo export` writes a file that `traxo apply` finds unchanged, without the secrets in it."""

from __future__ import annotations

import re

import httpx

from tests.config_as_code.support import ROUTING_KEY, SLACK_URL, TOKEN, apply, full_file, traxo, write


def test_export_then_apply_is_a_no_op(server, org, tmp_path):
    assert apply(server, org, write(tmp_path, full_file(org))).exit_code == 0
    exported = tmp_path / "exported.yaml"

    result = traxo(server, org, "export", "-o", str(exported))

    assert result.exit_code == 0, result.output
    text = exported.read_text()
    for secret in (SLACK_URL, ROUTING_KEY, TOKEN):
        assert secret not in text
    variables = re.findall(r"^#   ([A-Z0-9_]+)$", text, re.MULTILINE)
    assert variables == ["OPS_SLACK_WEBHOOK_URL", "PAGER_ROUTING_KEY", "WEB_AUTHORIZATION"]
    assert "webhookUrl: ${OPS_SLACK_WEBHOOK_URL}" in text
    assert "- name: Receiver\n  type: WEBHOOK\n  config:\n    url: http://127.0.0.1:9/hook\n" in text
    # References by name, short forms where the defaults hold.
    assert "  alertChannels:\n  - Ops Slack\n  - On-call\n" in text
    assert "  - web\n  - monitor: db\n    displayName: Database\n    group: Backend\n" in text
    server.proxy.requests.clear()

    values = {
        "OPS_SLACK_WEBHOOK_URL": SLACK_URL,
        "PAGER_ROUTING_KEY": ROUTING_KEY,
        "WEB_AUTHORIZATION": f"Bearer {TOKEN}",
    }
    again = apply(server, org, exported, "--prune", env=values)

    assert again.exit_code == 0, again.output
    assert "No changes: the organization matches the file." in again.stdout
    assert server.proxy.writes() == []


def test_export_to_stdout_shows_only_the_keys_organization(server, org, other_org, tmp_path):
    assert apply(server, org, write(tmp_path, full_file(org))).exit_code == 0
    theirs = "version: 1\nmonitors:\n  - name: theirs\n    type: HEARTBEAT\n"
    assert apply(server, other_org, write(tmp_path, theirs, "theirs.yaml")).exit_code == 0

    result = traxo(server, other_org, "export")

    assert result.exit_code == 0, result.output
    body = [line for line in result.stdout.splitlines() if not line.startswith("#")]
    assert body == [
        "version: 1",
        "monitors:",
        "- name: theirs",
        "  type: HEARTBEAT",
        "  interval: 60",
        "  timeout: 30",
        "  regions:",
        "  - us-east-1",
    ]


def test_dollar_signs_the_organization_holds_are_exported_as_apply_reads_them(server, org, tmp_path):
    # Built through the API by hand: `$$` and `${NAME}` are the file's interpolation, not the data's.
    monitor = {
        "name": "cost $5 $$ ${WHO}",
        "type": "HTTP",
        "url": "http://127.0.0.1:9/",
        "interval": 60,
        "config": {"body": '{"user": "${user}", "price": "$$5"}'},
    }
    created = httpx.post(f"{server.api_url}/api/monitors", json=monitor, headers=org.headers)
    assert created.status_code == 201, created.text
    exported = tmp_path / "exported.yaml"
    assert traxo(server, org, "export", "-o", str(exported)).exit_code == 0
    server.proxy.requests.clear()

    again = apply(server, org, exported, env={"WHO": "someone", "user": "me"})

    assert again.exit_code == 0, again.output
    assert "No changes: the organization matches the file." in again.stdout
    assert server.proxy.writes() == []

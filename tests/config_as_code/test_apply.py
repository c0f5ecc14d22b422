"""`traxo apply` against a real `traxo api`: creates, no-op second runs, updates with their diff,
pruning, dry runs, secrets, API errors, and other organizations left alone."""

from __future__ import annotations

import httpx

from tests.config_as_code.support import (
    ROUTING_KEY,
    SLACK_URL,
    TOKEN,
    apply,
    by_name,
    full_file,
    read,
    write,
)


def test_it_creates_everything_with_references_resolved(server, org, tmp_path):
    path = write(tmp_path, full_file(org))

    result = apply(server, org, path)

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    # References exist before they are used: channels, then db before web (web depends on it).
    creates = [line.strip() for line in lines if line.strip().startswith("+ create")]
    assert creates == [
        '+ create alert channel "Ops Slack"',
        '+ create alert channel "On-call"',
        '+ create alert channel "Pager"',
        '+ create alert channel "Receiver"',
        '+ create monitor "db"',
        '+ create monitor "web"',
        '+ create monitor "nightly job"',
        '+ create maintenance window "Weekly patching"',
        '+ create maintenance window "Database upgrade"',
        f'+ create status page "{_slug(org)}"',
    ]
    assert "Plan: 10 to create, 0 to update, 0 to delete." in lines
    assert "Applied: 10 created, 0 updated, 0 deleted." in lines
    channels = by_name(read(server, org, "/api/alert-channels"))
    monitors = {
        m["name"]: read(server, org, f"/api/monitors/{m['id']}") for m in read(server, org, "/api/monitors")
    }
    web, db = monitors["web"], monitors["db"]
    assert web["alertChannelIds"] == [channels["Ops Slack"]["id"], channels["On-call"]["id"]]
    assert web["config"]["dependsOn"] == [db["id"]]
    assert web["config"]["headers"] == {"Authorization": f"Bearer {TOKEN}"}
    assert web["interval"] == 60 and db["regions"] == ["us-east-1", "eu-west-1"]
    assert monitors["nightly job"]["isActive"] is False
    windows = by_name(read(server, org, "/api/maintenance"), "title")
    assert windows["Database upgrade"]["monitorId"] == db["id"]
    assert windows["Weekly patching"]["recurrence"] == "0 3 * * 0"
    (page,) = read(server, org, "/api/status-pages")
    assert [(c["monitor"]["id"], c["displayName"], c["group"]) for c in page["components"]] == [
        (web["id"], "web", None),
        (db["id"], "Database", "Backend"),
    ]
    # Secrets reached the server, and the output never shows them.
    assert channels["Pager"]["config"]["routingKey"].endswith(ROUTING_KEY[-4:])
    for secret in (SLACK_URL, ROUTING_KEY, TOKEN):
        assert secret not in result.output


def test_a_second_apply_finds_no_changes_and_writes_nothing(server, org, tmp_path):
    path = write(tmp_path, full_file(org))
    assert apply(server, org, path).exit_code == 0
    server.proxy.requests.clear()

    again = apply(server, org, path)
    planned = apply(server, org, path, "--dry-run", "--detailed-exitcode")

    assert again.exit_code == 0, again.output
    assert "No changes: the organization matches the file." in again.stdout
    assert planned.exit_code == 0, planned.output
    assert server.proxy.requests, "the proxy saw the reads"
    assert server.proxy.writes() == []


def test_values_the_api_trims_are_applied_once(server, org, tmp_path):
    slug = _slug(org)
    text = (
        "version: 1\n"
        "alertChannels:\n"
        "  - {name: mail, type: EMAIL, config: {recipients: [' Ops@Example.com ']}}\n"
        "  - {name: hook, type: WEBHOOK, config: {url: ' http://127.0.0.1:9/hook '}}\n"
        "monitors:\n  - {name: ping, type: PING, url: ' 127.0.0.1 ', interval: 60}\n"
        "maintenanceWindows:\n"
        "  - {title: w, startsAt: 2027-01-01, endsAt: 2027-03-01, recurrence: ' 0 3 * * 0 ',"
        " durationMinutes: 10}\n"
        "statusPages:\n"
        f"  - name: Status\n    slug: {slug}\n    customDomain: ' {slug}.example.com '\n"
        "    logoUrl: ' https://127.0.0.1/logo.png '\n    faviconUrl: ' https://127.0.0.1/icon.png '\n"
        "    monitors: [{monitor: ping, group: ' Network '}]\n"
    )
    path = write(tmp_path, text)
    assert apply(server, org, path).exit_code == 0
    server.proxy.requests.clear()

    again = apply(server, org, path)

    assert "No changes" in again.stdout, again.stdout
    assert server.proxy.writes() == []


def test_a_changed_field_is_one_update_showing_its_diff(server, org, tmp_path):
    path = write(tmp_path, full_file(org))
    assert apply(server, org, path).exit_code == 0
    write(tmp_path, full_file(org).replace("interval: 60", "interval: 30"))
    server.proxy.requests.clear()

    planned = apply(server, org, path, "--dry-run", "--detailed-exitcode")
    assert planned.exit_code == 2, planned.output
    assert '~ update monitor "web": interval 60 -> 30' in planned.stdout
    assert "Plan: 0 to create, 1 to update, 0 to delete." in planned.stdout
    assert server.proxy.writes() == []  # a dry run changes nothing

    applied = apply(server, org, path)
    assert applied.exit_code == 0, applied.output
    web = next(m for m in read(server, org, "/api/monitors") if m["name"] == "web")
    assert server.proxy.writes() == [("PUT", f"/api/monitors/{web['id']}")]
    assert web["interval"] == 30
    assert "No changes" in apply(server, org, path).stdout


def test_nested_changes_show_their_path_and_hide_secrets(server, org, tmp_path):
    path = write(tmp_path, full_file(org))
    assert apply(server, org, path).exit_code == 0
    text = full_file(org).replace("value: 200", "value: 201").replace("group: Backend", "group: Data")
    write(tmp_path, text)
    new_url, new_token = SLACK_URL.replace("0001", "0002"), TOKEN.replace("0001", "0002")

    result = apply(server, org, path, env={"SLACK_URL": new_url, "PROBE_TOKEN": new_token})

    assert result.exit_code == 0, result.output
    out = result.stdout
    assert (
        '~ update alert channel "Ops Slack": config.webhookUrl changed (secret, from ${SLACK_URL}; not shown)'
        in out
    )
    assert 'config.assertions[0].value "200" -> "201"' in out
    assert "config.headers.Authorization changed (secret, from ${PROBE_TOKEN}; not shown)" in out
    assert f'~ update status page "{_slug(org)}": monitors[1].group "Backend" -> "Data"' in out
    for secret in (SLACK_URL, new_url, TOKEN, new_token):
        assert secret not in result.output
    again = apply(server, org, path, env={"SLACK_URL": new_url, "PROBE_TOKEN": new_token})
    assert "No changes" in again.stdout


def test_credential_headers_the_api_shows_are_not_printed_in_a_plan(server, org, tmp_path):
    # Monitors' headers are not masked by the API: one set by hand, or whose ${VAR} the file no
    # longer uses, would otherwise be printed as the old side of a diff.
    monitor = {"name": "web", "type": "HTTP", "url": "http://127.0.0.1:9/", "interval": 60}
    created = httpx.post(
        f"{server.api_url}/api/monitors",
        json={**monitor, "config": {"headers": {"X-Api-Key": "hand-made-key-1", "Accept": "json"}}},
        headers=org.headers,
    )
    assert created.status_code == 201, created.text
    text = "version: 1\nmonitors:\n  - {name: web, type: HTTP, url: 'http://127.0.0.1:9/', interval: 60}\n"
    path = write(tmp_path, text)
    no_headers = apply(server, org, path, "--dry-run")
    write(tmp_path, text.replace("interval: 60}", "interval: 60, config: {headers: {Accept: xml}}}"))
    one_gone = apply(server, org, path, "--dry-run")

    assert 'config.headers {"X-Api-Key": "(not shown)", "Accept": "json"} -> (none)' in no_headers.stdout
    assert "config.headers.X-Api-Key changed (a credential header; not shown)" in one_gone.stdout
    assert 'config.headers.Accept "json" -> "xml"' in one_gone.stdout
    for result in (no_headers, one_gone):
        assert result.exit_code == 0, result.output
        assert "hand-made-key-1" not in result.output


def test_a_long_list_that_grows_shows_the_items_that_differ(server, org, tmp_path):
    monitors = [f"monitor number {i}" for i in range(6)]
    text = "version: 1\nmonitors:\n" + "".join(f"  - {{name: {m}, type: HEARTBEAT}}\n" for m in monitors)
    page = f"statusPages:\n  - name: Status\n    slug: {_slug(org)}\n    monitors: [{{}}]\n"
    path = write(tmp_path, text + page.format(", ".join(monitors[:5])))
    assert apply(server, org, path).exit_code == 0
    write(tmp_path, text + page.format(", ".join(monitors)))

    result = apply(server, org, path, "--dry-run")

    assert result.exit_code == 0, result.output
    added = '{"monitor": "monitor number 5", "displayName": "monitor number 5", "order": 5, "group": null}'
    assert f'~ update status page "{_slug(org)}": monitors[5] (none) -> {added}\n' in result.stdout


def test_removed_resources_are_kept_unless_pruned(server, org, tmp_path):
    path = write(tmp_path, full_file(org))
    assert apply(server, org, path).exit_code == 0
    lean = full_file(org).replace("  - name: nightly job\n    type: HEARTBEAT\n    isActive: false\n", "")
    write(tmp_path, lean)

    kept = apply(server, org, path)
    assert kept.exit_code == 0, kept.output
    assert 'monitor "nightly job": not in the file, kept (--prune deletes it)' in kept.stdout
    assert "No changes: the organization matches the file, 1 not in the file and kept." in kept.stdout
    names = {m["name"]: m["id"] for m in read(server, org, "/api/monitors")}
    assert "nightly job" in names
    server.proxy.requests.clear()

    pruned = apply(server, org, path, "--prune")
    assert pruned.exit_code == 0, pruned.output
    assert '- delete monitor "nightly job"' in pruned.stdout
    assert server.proxy.writes() == [("DELETE", f"/api/monitors/{names['nightly job']}")]
    assert "nightly job" not in {m["name"] for m in read(server, org, "/api/monitors")}


def test_an_api_refusal_names_the_resource_its_line_and_what_was_applied(server, org, tmp_path):
    text = """\
version: 1
alertChannels:
  - name: Mail
    type: EMAIL
    config: {recipients: [ops@example.com]}
monitors:
  - name: far away
    type: HTTP
    url: http://127.0.0.1:9/
    regions: [mars-north-1]
"""
    result = apply(server, org, write(tmp_path, text))

    assert result.exit_code == 1
    assert 'create monitor "far away" (traxo.yaml:7) failed: 400: regions' in result.stderr
    assert 'Applied before it: + create alert channel "Mail".' in result.stderr
    assert [c["name"] for c in read(server, org, "/api/alert-channels")] == ["Mail"]


def test_a_name_the_organization_repeats_is_refused(server, org, tmp_path):
    for _ in range(2):
        created = httpx.post(
            f"{server.api_url}/api/monitors",
            json={"name": "twin", "type": "HEARTBEAT"},
            headers=org.headers,
        )
        assert created.status_code == 201, created.text
    text = "version: 1\nmonitors:\n  - name: twin\n    type: HEARTBEAT\n"

    result = apply(server, org, write(tmp_path, text))

    assert result.exit_code == 1
    assert "traxo.yaml:3: monitors[0].name: the organization has 2 monitors with name 'twin'" in result.stderr
    assert server.proxy.writes() == []


def test_a_reference_to_nothing_is_an_error_with_its_line(server, org, tmp_path):
    text = """\
version: 1
monitors:
  - name: web
    type: HEARTBEAT
    alertChannels: [Nobody]
maintenanceWindows:
  - title: Upgrade
    monitor: ghost
    startsAt: 2026-06-20T02:00:00Z
    endsAt: 2026-06-20T04:00:00Z
"""
    result = apply(server, org, write(tmp_path, text))

    assert result.exit_code == 1
    assert (
        "traxo.yaml:5: monitors[0].alertChannels[0]: no alert channel named 'Nobody' in the file or "
        "the organization" in result.stderr
    )
    assert "traxo.yaml:8: maintenanceWindows[0].monitor: no monitor named 'ghost'" in result.stderr
    assert server.proxy.writes() == []


def test_a_reference_may_name_what_the_organization_has(server, org, tmp_path):
    created = httpx.post(
        f"{server.api_url}/api/alert-channels",
        json={"name": "Existing", "type": "EMAIL", "config": {"recipients": ["a@example.com"]}},
        headers=org.headers,
    )
    assert created.status_code == 201
    text = "version: 1\nmonitors:\n  - name: web\n    type: HEARTBEAT\n    alertChannels: [Existing]\n"

    result = apply(server, org, write(tmp_path, text))

    assert result.exit_code == 0, result.output
    (monitor,) = read(server, org, "/api/monitors")
    assert read(server, org, f"/api/monitors/{monitor['id']}")["alertChannelIds"] == [
        created.json()["data"]["id"]
    ]


def test_prune_refuses_to_delete_what_the_file_still_refers_to(server, org, tmp_path):
    # A window and a page component go with their monitor: deleting "db" after writing them would
    # delete the file's own window, and leave the next apply unable to resolve the name.
    before = "version: 1\nmonitors:\n  - name: db\n    type: HEARTBEAT\n"
    assert apply(server, org, write(tmp_path, before)).exit_code == 0
    text = (
        "version: 1\n"
        "maintenanceWindows:\n"
        "  - title: upgrade\n"
        "    monitor: db\n"
        "    startsAt: 2027-01-01T00:00:00Z\n"
        "    endsAt: 2027-01-01T01:00:00Z\n"
        "statusPages:\n"
        "  - name: Status\n"
        f"    slug: {_slug(org)}\n"
        "    monitors: [db]\n"
    )
    path = write(tmp_path, text)
    server.proxy.requests.clear()

    result = apply(server, org, path, "--prune")

    assert result.exit_code == 1, result.output
    assert (
        "traxo.yaml:4: maintenanceWindows[0].monitor: monitor 'db' is not in the file, "
        "so --prune would delete it" in result.stderr
    )
    assert "traxo.yaml:10: statusPages[0].monitors[0]: monitor 'db' is not in the file" in result.stderr
    assert server.proxy.writes() == []
    # Without --prune the monitor is kept, and the reference to it is fine.
    assert apply(server, org, path).exit_code == 0
    assert "No changes" in apply(server, org, path).stdout
    assert [window["title"] for window in read(server, org, "/api/maintenance")] == ["upgrade"]


def test_components_whose_orders_differ_from_their_places_are_applied_once(server, org, tmp_path):
    text = (
        "version: 1\n"
        "monitors:\n"
        "  - {name: a, type: HEARTBEAT}\n"
        "  - {name: b, type: HEARTBEAT}\n"
        "  - {name: c, type: HEARTBEAT}\n"
        "statusPages:\n"
        "  - name: Status\n"
        f"    slug: {_slug(org)}\n"
        "    monitors: [{monitor: a, order: 5}, b, {monitor: c, order: 0}]\n"
    )
    path = write(tmp_path, text)
    assert apply(server, org, path).exit_code == 0
    server.proxy.requests.clear()

    again = apply(server, org, path)

    assert again.exit_code == 0, again.output
    assert "No changes" in again.stdout, again.stdout
    assert server.proxy.writes() == []


def test_a_page_whose_slug_changes_keeps_its_custom_domain_with_prune(server, org, tmp_path):
    # A new slug is a new page: the old one is deleted first, or the domain it holds is taken.
    slug = _slug(org)
    text = (
        "version: 1\n"
        "monitors:\n  - {name: web, type: HEARTBEAT}\n"
        "statusPages:\n"
        f"  - {{name: Status, slug: {slug}, customDomain: {slug}.example.com, monitors: [web]}}\n"
    )
    path = write(tmp_path, text)
    assert apply(server, org, path).exit_code == 0
    write(tmp_path, text.replace(f"slug: {slug},", f"slug: {slug}-new,"))

    result = apply(server, org, path, "--prune")

    assert result.exit_code == 0, result.output
    assert f'- delete status page "{slug}"\n  + create status page "{slug}-new"' in result.stdout
    (page,) = read(server, org, "/api/status-pages")
    assert (page["slug"], page["customDomain"]) == (f"{slug}-new", f"{slug}.example.com")
    assert "No changes" in apply(server, org, path, "--prune").stdout


def test_other_organizations_are_never_touched_or_listed(server, org, other_org, tmp_path):
    other = other_org
    theirs = write(tmp_path, "version: 1\nmonitors:\n  - name: theirs\n    type: HEARTBEAT\n", "theirs.yaml")
    assert apply(server, other, theirs).exit_code == 0
    path = write(tmp_path, full_file(org))

    result = apply(server, org, path, "--prune")

    assert result.exit_code == 0, result.output
    assert "theirs" not in result.stdout
    assert [m["name"] for m in read(server, other, "/api/monitors")] == ["theirs"]
    assert "No changes" in apply(server, other, theirs, "--prune").stdout


def _slug(org) -> str:
    return f"acme-{(org.org_id or '').removeprefix('org_')[:12]}"


def test_monitors_that_depend_on_each_other_are_refused(server, org, tmp_path):
    text = """\
version: 1
monitors:
  - name: a
    type: HEARTBEAT
    config: {dependsOn: [b]}
  - name: b
    type: HEARTBEAT
    config: {dependsOn: [a]}
"""
    result = apply(server, org, write(tmp_path, text))

    assert result.exit_code == 1
    assert (
        "traxo.yaml:5: monitors[0].config.dependsOn: monitors depend on each other: a -> b -> a"
        in result.stderr
    )
    assert server.proxy.writes() == []


def test_a_channel_cannot_change_its_type(server, org, tmp_path):
    channel = "version: 1\nalertChannels:\n  - name: Ops\n"
    mail = channel + "    type: EMAIL\n    config: {recipients: [a@example.com]}\n"
    assert apply(server, org, write(tmp_path, mail)).exit_code == 0
    slack = channel + "    type: SLACK\n    config: {webhookUrl: '${SLACK_URL}'}\n"

    result = apply(server, org, write(tmp_path, slack))

    assert result.exit_code == 1
    assert (
        "traxo.yaml:4: alertChannels[0].type: the channel is EMAIL and its type cannot change"
        in result.stderr
    )


def test_replace_secrets_sends_secret_bearing_configs_again(server, org, tmp_path):
    path = write(tmp_path, full_file(org))
    assert apply(server, org, path).exit_code == 0
    server.proxy.requests.clear()

    result = apply(server, org, path, "--replace-secrets")

    assert result.exit_code == 0, result.output
    assert '~ update alert channel "Ops Slack": config (secrets sent again)' in result.stdout
    assert '~ update alert channel "Pager": config (secrets sent again)' in result.stdout
    channels = by_name(read(server, org, "/api/alert-channels"))
    assert sorted(server.proxy.writes()) == sorted(
        ("PATCH", f"/api/alert-channels/{channels[name]['id']}") for name in ("Ops Slack", "Pager")
    )


def test_fields_left_to_the_server_are_kept_as_it_chose(server, free_org, tmp_path):
    text = "version: 1\nmonitors:\n  - name: web\n    type: HTTP\n    url: http://127.0.0.1:9/\n"
    path = write(tmp_path, text)
    assert apply(server, free_org, path).exit_code == 0
    (web,) = read(server, free_org, "/api/monitors")
    assert (web["interval"], web["timeout"], web["regions"]) == (300, 30, ["us-east-1"])  # FREE's minimum
    server.proxy.requests.clear()

    again = apply(server, free_org, path)

    assert "No changes" in again.stdout
    assert server.proxy.writes() == []
    write(tmp_path, text + "    interval: 60\n")
    refused = apply(server, free_org, path)
    assert refused.exit_code == 1
    assert 'update monitor "web" (traxo.yaml:3) failed: 403: interval:' in refused.stderr
    assert "Nothing was applied." in refused.stderr

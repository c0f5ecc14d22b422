"""Bad files fail before anything is asked of the API, each problem with its line and field, all of
them in one run."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from click.testing import CliRunner

from control_plane.commands.main import main

VALID_MONITOR = "  - name: web\n    type: HTTP\n    url: https://example.com/\n"


def _apply(tmp_path, text: str, env: dict[str, str] | None = None):
    path = tmp_path / "traxo.yaml"
    path.write_text(text)
    # Port 9 on 127.0.0.1 answers nothing: a file that got as far as the API would fail otherwise.
    environment = {"TRAXO_API_URL": "http://127.0.0.1:9", "TRAXO_API_KEY": "traxo_unused", **(env or {})}
    return CliRunner().invoke(main, ["apply", "-f", str(path)], env=environment, catch_exceptions=False)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            f"version: 1\nmonitors:\n{VALID_MONITOR}    intervall: 60\n",
            "traxo.yaml:6: monitors[0].intervall: unknown field",
            id="unknown-field",
        ),
        pytest.param(
            f"version: 1\nmonitors:\n{VALID_MONITOR}    interval: thirty\n",
            "traxo.yaml:6: monitors[0].interval: must be an integer",
            id="wrong-type",
        ),
        pytest.param(
            f"version: 1\nmonitors:\n{VALID_MONITOR}    interval: 5\n",
            "traxo.yaml:6: monitors[0].interval: must be at least 15",
            id="out-of-range",
        ),
        pytest.param(
            f"version: 1\nmonitors:\n{VALID_MONITOR}{VALID_MONITOR}",
            "traxo.yaml:6: monitors[1].name: 'web' is already used on line 3",
            id="duplicate-name",
        ),
        pytest.param(
            "version: 1\nalertChannels:\n  - name: Ops\n    type: SLACK\n    config:\n"
            "      webhookUrl: ${UNSET_IN_THIS_TEST}\n",
            "traxo.yaml:6: alertChannels[0].config.webhookUrl: environment variable UNSET_IN_THIS_TEST "
            "is not set",
            id="unset-variable",
        ),
        pytest.param(
            "version: 1\nstatusPages:\n  - name: Page\n    slug: Not A Slug\n    monitors: [web]\n",
            "traxo.yaml:4: statusPages[0].slug: must be lowercase letters, digits and single hyphens",
            id="bad-slug",
        ),
        pytest.param(
            "version: 1\nstatusPages:\n  - name: Page\n    slug: page\n"
            "    monitors: [{monitor: web, order: -1}]\n",
            "traxo.yaml:5: statusPages[0].monitors[0].order: must be at least 0",
            id="component-object",
        ),
        pytest.param(
            "version: 1\nstatusPages:\n  - name: Page\n    slug: page\n"
            "    monitors:\n      - web\n      - {monitor: web, displayName: Again}\n",
            "traxo.yaml:7: statusPages[0].monitors[1]: 'web' is already on this page (monitors[0])",
            id="component-twice",
        ),
        pytest.param(
            f"version: 2\nmonitors:\n{VALID_MONITOR}",
            "traxo.yaml:1: version: must be one of 1",
            id="version",
        ),
        pytest.param(
            "version: 1\nmonitors:\n  - name: web\n    name: again\n    type: TCP\n",
            "traxo.yaml:4: monitors[0].name: given twice in the same object",
            id="repeated-key",
        ),
        pytest.param("version: 1\nmonitors: [\n", "traxo.yaml:3: not valid YAML", id="not-yaml"),
        pytest.param("", "traxo.yaml:1: the file is empty", id="empty"),
        pytest.param(
            "version: 1\nmonitors:\n  - name: x\n    type: HEARTBEAT\n    config: &c {a: [*c]}\n",
            "traxo.yaml:5: monitors[0].config.a[0]: an alias of an object or list inside itself",
            id="alias-inside-itself",
        ),
    ],
)
def test_a_bad_file_fails_with_its_line_and_field(tmp_path, text, expected):
    result = _apply(tmp_path, text)

    assert result.exit_code == 1
    assert expected in result.stderr
    assert "cannot reach" not in result.stderr  # it never got as far as the API


def test_every_problem_is_reported_in_one_run(tmp_path):
    text = """\
version: 1
monitors:
  - name: web
    type: HTTPS
    timeout: 0
  - name: api
    type: TCP
    colour: blue
alertChannels:
  - name: Ops
    type: WEBHOOK
maintenanceWindows:
  - title: Upgrade
    startsAt: tomorrow
    endsAt: 2026-06-20T04:00:00Z
"""
    result = _apply(tmp_path, text)

    assert result.exit_code == 1
    problems = [line for line in result.stderr.splitlines() if line.startswith("traxo.yaml:")]
    assert problems == [
        "traxo.yaml:4: monitors[0].type: must be one of 'HTTP', 'TCP', 'PING', 'DNS', 'SSL', 'HEARTBEAT', "
        "'BROWSER' or 'LLM'",
        "traxo.yaml:5: monitors[0].timeout: must be at least 1",
        "traxo.yaml:8: monitors[1].colour: unknown field",
        "traxo.yaml:10: alertChannels[0].config: required",
        "traxo.yaml:14: maintenanceWindows[0].startsAt: must be an ISO 8601 timestamp (2025-06-20T02:00:00Z) "
        "or date (2025-06-20)",
    ]


def test_dollar_dollar_writes_a_dollar(tmp_path):
    from control_plane.config_as_code.loader import load_text

    loaded = load_text(
        "version: 1\nmonitors:\n  - name: cost $$5 ${WHO}\n    type: HEARTBEAT\n", "traxo.yaml", {"WHO": "me"}
    )

    assert loaded.spec.monitors[0].name == "cost $5 me"
    assert loaded.positions.secret_under(("monitors", 0)) == ["WHO"]


@pytest.mark.parametrize("command", ["apply", "export"])
def test_without_a_key_it_says_which_variable_to_set(tmp_path, command):
    path = tmp_path / "traxo.yaml"
    path.write_text("version: 1\n")
    args = ["apply", "-f", str(path), "--dry-run", "--detailed-exitcode"] if command == "apply" else [command]

    result = CliRunner().invoke(main, args, env={"TRAXO_API_KEY": ""})

    assert result.exit_code == 1  # an error: with --detailed-exitcode, 2 would read as "changes"
    assert "no API key: set TRAXO_API_KEY" in result.stderr


def test_a_directory_for_a_file_is_an_error_not_changes(tmp_path):
    args = ["apply", "-f", str(tmp_path), "--dry-run", "--detailed-exitcode"]

    result = CliRunner().invoke(main, args, env={"TRAXO_API_KEY": "traxo_unused"})

    assert result.exit_code == 1
    assert f"{tmp_path.name}:1: cannot read it (Is a directory)" in result.stderr


def test_detailed_exitcode_goes_with_dry_run(tmp_path):
    path = tmp_path / "traxo.yaml"
    path.write_text("version: 1\n")

    result = CliRunner().invoke(main, ["apply", "-f", str(path), "--detailed-exitcode"])

    assert result.exit_code == 2
    assert "--detailed-exitcode goes with --dry-run" in result.stderr


@pytest.mark.parametrize("command", ["export", "apply"])
def test_an_address_that_is_not_the_api_is_an_error_not_a_traceback(tmp_path, command):
    # A web page answering 200 to every path (the dashboard's address given for the API's).
    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"<html>a dashboard</html>"
            try:
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the command stopped at the first such answer and cancelled the rest

        def log_message(self, format: str, *args: object) -> None:
            pass

    (tmp_path / "traxo.yaml").write_text("version: 1\n")
    http = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{http.server_address[1]}"
        env = {"TRAXO_API_URL": url, "TRAXO_API_KEY": "traxo_unused"}
        args = ["apply", "-f", str(tmp_path / "traxo.yaml")] if command == "apply" else ["export"]
        result = CliRunner().invoke(main, args, env=env, catch_exceptions=False)
    finally:
        http.shutdown()
        http.server_close()

    assert result.exit_code == 1, result.output
    assert f"answered 200 without the API's JSON: is {url} a Traxo API?" in result.stderr


def test_anchors_and_merge_keys_read_as_yaml_does():
    from control_plane.config_as_code.loader import load_text

    text = """\
version: 1
monitors:
  - &web
    name: web
    type: HTTP
    interval: 60
    url: https://example.com/
  - <<: *web
    name: api
    url: https://api.example.com/
"""
    loaded = load_text(text, "traxo.yaml", {})

    api = loaded.spec.monitors[1]
    assert (api.name, api.type, api.interval, api.url) == ("api", "HTTP", 60, "https://api.example.com/")
    assert loaded.line("monitors", 1, "name") == 9

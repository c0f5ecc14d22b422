"""Running `traxo apply` and `traxo export` in-process (click's runner) against the test server, and
reading what it holds through the API."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from click.testing import CliRunner, Result

from control_plane.commands.main import main
from tests.conftest import Account


@dataclass
class CountingProxy:
    """Forwards every request to the API and notes its method and path."""

    target: str
    port: int = 0
    requests: list[tuple[str, str]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def writes(self) -> list[tuple[str, str]]:
        return [(method, path) for method, path in self.requests if method != "GET"]


def _proxy_handler(proxy: CountingProxy, client: httpx.Client) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            proxy.requests.append((self.command, self.path))
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
            answer = client.request(self.command, proxy.target + self.path, content=body, headers=headers)
            self.send_response(answer.status_code)
            for name, value in answer.headers.items():
                if name.lower() not in (
                    "content-length",
                    "transfer-encoding",
                    "connection",
                    "content-encoding",
                ):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer.content)))
            self.end_headers()
            self.wfile.write(answer.content)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@dataclass(frozen=True)
class Server:
    api_url: str
    proxy: CountingProxy
    database_url: str


@contextmanager
def counting_proxy(target: str, client: httpx.Client) -> Iterator[CountingProxy]:
    """A CountingProxy to `target` on a port of its own, served by a thread until the block ends."""
    proxy = CountingProxy(target)
    http = ThreadingHTTPServer(("127.0.0.1", 0), _proxy_handler(proxy, client))
    proxy.port = http.server_address[1]
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        http.shutdown()
        http.server_close()


SLACK_URL = "https://127.0.0.1:9/services/T000/B000/slack-secret-0001"
ROUTING_KEY = "abcdefghijklmnopqrstuvwxyz012345"
TOKEN = "probe-token-0001"
SECRETS = {"SLACK_URL": SLACK_URL, "PD_KEY": ROUTING_KEY, "PROBE_TOKEN": TOKEN}

# Every kind, every kind of reference, and the secrets of each sort.
FULL = """\
version: 1
alertChannels:
  - name: Ops Slack
    type: SLACK
    config:
      webhookUrl: ${SLACK_URL}
  - name: On-call
    type: EMAIL
    config:
      recipients: [oncall@example.com]
  - name: Pager
    type: PAGERDUTY
    config: {routingKey: "${PD_KEY}"}
  - name: Receiver
    type: WEBHOOK
    config: {url: "http://127.0.0.1:9/hook"}
monitors:
  - name: web
    type: HTTP
    url: http://127.0.0.1:9/health
    interval: 60
    alertChannels: [Ops Slack, On-call]
    config:
      dependsOn: [db]
      headers: {Authorization: "Bearer ${PROBE_TOKEN}"}
      assertions:
        - {type: status_code, operator: equals, value: 200}
  - name: db
    type: TCP
    url: tcp://127.0.0.1:5432
    regions: [us-east-1, eu-west-1]
  - name: nightly job
    type: HEARTBEAT
    isActive: false
maintenanceWindows:
  - title: Weekly patching
    startsAt: 2026-01-01
    endsAt: 2027-01-01T00:00:00Z
    recurrence: "0 3 * * 0"
    durationMinutes: 90
  - title: Database upgrade
    monitor: db
    startsAt: 2026-06-20T02:00:00Z
    endsAt: 2026-06-20T04:00:00Z
statusPages:
  - name: Acme Status
    slug: {slug}
    monitors:
      - web
      - {monitor: db, displayName: Database, group: Backend}
"""


def full_file(org: Account) -> str:
    """FULL with a page slug of the organization's own (slugs are unique across organizations)."""
    return FULL.replace("{slug}", f"acme-{(org.org_id or '').removeprefix('org_')[:12]}")


def traxo(
    server: Server, org: Account, *args: str, env: dict[str, str] | None = None, direct: bool = False
) -> Result:
    """`traxo ARGS` with the organization's key, through the counting proxy unless `direct`."""
    environment = {
        "TRAXO_API_URL": server.api_url if direct else server.proxy.url,
        "TRAXO_API_KEY": org.key,
        **SECRETS,
        **(env or {}),
    }
    return CliRunner().invoke(main, list(args), env=environment, catch_exceptions=False)


def apply(server: Server, org: Account, path: Path, *flags: str, env: dict[str, str] | None = None) -> Result:
    return traxo(server, org, "apply", "-f", str(path), *flags, env=env)


def write(directory: Path, text: str, name: str = "traxo.yaml") -> Path:
    path = directory / name
    path.write_text(text)
    return path


def read(server: Server, org: Account, path: str) -> Any:
    answer = httpx.get(f"{server.api_url}{path}", headers=org.headers, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()["data"]


def by_name(items: list[dict[str, Any]], key: str = "name") -> dict[str, dict[str, Any]]:
    return {item[key]: item for item in items}

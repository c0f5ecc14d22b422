"""Every bad monitor field is a 400 naming its path (never a 422 or a 500); good configs are stored
normalized. The tables follow the reference's field list and docs/monitor-config.md."""

from __future__ import annotations

from typing import Any

import pytest
import trustme

from tests.monitor_tools import create_monitor, set_plan

# Enterprise: every type and interval is allowed, so only validation can refuse.
BASE = {"name": "Production API", "url": "https://api.example.com/health", "type": "HTTP", "interval": 60}
TARGETS = {
    "HTTP": "https://api.example.com/health",
    "BROWSER": "https://shop.example.com/",
    "TCP": "tcp://db.example.com:5432",
    "PING": "db.example.com",
    "DNS": "example.com",
    "SSL": "example.com",
    "HEARTBEAT": None,
    "LLM": None,
}
MISSING = object()


@pytest.fixture
async def enterprise(world, database):
    await set_plan(database, world.org_a, "ENTERPRISE")
    return world


def _problems(results: list[tuple[Any, int, str, str]]) -> list[str]:
    """Cases whose answer was not a 400 naming the expected field path."""
    return [
        f"{case!r}: {status} {error!r} (wanted 400 '{field}…')"
        for case, status, error, field in results
        if status != 400 or not error.startswith(field)
    ]


# --- the monitor's own fields -------------------------------------------------------------------

FIELD_CASES: list[tuple[str, Any, str]] = [
    # field, bad value (MISSING: left out), error prefix
    ("name", "", "name:"),
    ("name", "   ", "name:"),
    ("name", "x" * 101, "name:"),
    ("name", None, "name:"),
    ("name", 42, "name:"),
    ("name", ["a"], "name:"),
    ("name", "nul\x00name", "name:"),  # PostgreSQL text cannot hold NUL
    ("name", "line\nbreak", "name:"),
    ("url", "ftp://files.example.com/", "url:"),
    ("url", "javascript:alert(1)", "url:"),
    ("url", "https://", "url:"),
    ("url", "https:///path", "url:"),
    ("url", "https://exa mple.com/", "url:"),
    ("url", "https://example.com/a b", "url:"),
    ("url", "https://example.com/" + "a" * 2029, "url:"),  # 2049 characters
    ("url", "https://[::1/", "url:"),
    ("url", "https://example.com:99999/", "url:"),
    ("url", "https://example.com:0/", "url:"),
    ("url", "https://bad_host!.com/", "url:"),
    ("url", 42, "url:"),
    ("url", "https://api.example.com/\x00", "url:"),
    ("url", "", "url:"),
    ("url", None, "url:"),
    ("type", "SMTP", "type:"),
    ("type", "http", "type:"),
    ("type", None, "type:"),
    ("type", 1, "type:"),
    ("interval", 0, "interval:"),
    ("interval", -60, "interval:"),
    ("interval", "60", "interval:"),
    ("interval", 60.5, "interval:"),
    ("interval", 60.0, "interval:"),
    ("interval", True, "interval:"),
    ("interval", None, "interval:"),
    ("interval", 3601, "interval:"),
    ("interval", 10**20, "interval:"),
    ("method", "FETCH", "method:"),
    ("method", "get", "method:"),
    ("method", None, "method:"),
    ("method", 1, "method:"),
    ("expectedStatus", 99, "expectedStatus:"),
    ("expectedStatus", 600, "expectedStatus:"),
    ("expectedStatus", "200", "expectedStatus:"),
    ("expectedStatus", 200.5, "expectedStatus:"),
    ("expectedStatus", True, "expectedStatus:"),
    ("expectedKeyword", "k" * 501, "expectedKeyword:"),
    ("expectedKeyword", "", "expectedKeyword:"),
    ("expectedKeyword", 5, "expectedKeyword:"),
    ("expectedKeyword", "nul\x00", "expectedKeyword:"),
    ("timeout", 0, "timeout:"),
    ("timeout", 61, "timeout:"),
    ("timeout", "10", "timeout:"),
    ("timeout", 1.5, "timeout:"),
    ("timeout", None, "timeout:"),
    ("regions", [], "regions:"),
    ("regions", "us-east-1", "regions:"),
    ("regions", ["us-east-1", "us-east-1"], "regions:"),
    ("regions", [1], "regions.0:"),
    ("regions", [""], "regions.0:"),
    ("regions", [f"r{i}" for i in range(21)], "regions:"),
    ("regions", ["mars-north-1"], "regions:"),
    ("regions", None, "regions:"),
    ("config", [], "config:"),
    ("config", "headers", "config:"),
    ("config", 1, "config:"),
    ("colour", "blue", "colour:"),
    ("orgId", "org_other", "orgId:"),
    ("isActive", False, "isActive:"),
]


def _body(base: dict[str, Any], field: str, value: Any) -> dict[str, Any]:
    body = dict(base)
    if value is MISSING:
        body.pop(field, None)
    else:
        body[field] = value
    return body


async def test_every_bad_create_field_is_400_naming_it(api, enterprise):
    cases = [
        *FIELD_CASES,
        ("name", MISSING, "name: field required"),
        ("type", MISSING, "type: field required"),
    ]
    cases += [("url", MISSING, "url: required for a HTTP monitor")]
    results = []
    for field, value, prefix in cases:
        response = await api.post(
            "/api/monitors", json=_body(BASE, field, value), headers=enterprise.alice.headers
        )
        results.append(((field, value), response.status_code, response.json().get("error", ""), prefix))
    assert _problems(results) == []
    assert (await api.get("/api/monitors", headers=enterprise.alice.headers)).json()["data"] == []


async def test_every_bad_update_field_is_400_and_changes_nothing(api, enterprise):
    monitor = await create_monitor(api, enterprise.alice, interval=60)
    url = f"/api/monitors/{monitor['id']}"
    before = (await api.get(url, headers=enterprise.alice.headers)).json()
    results = []
    for field, value, prefix in FIELD_CASES:
        response = await api.put(url, json={field: value}, headers=enterprise.alice.headers)
        results.append(((field, value), response.status_code, response.json().get("error", ""), prefix))
    assert _problems(results) == []
    assert (await api.get(url, headers=enterprise.alice.headers)).json() == before


async def test_unknown_regions_are_listed_with_the_known_ones(api, enterprise, settings, monkeypatch):
    monkeypatch.setattr(settings, "regions", ["us-east-1", "eu-west-1"])
    response = await api.post(
        "/api/monitors",
        json={**BASE, "regions": ["us-east-1", "mars-north-1"]},
        headers=enterprise.alice.headers,
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error.startswith("regions:") and "mars-north-1" in error
    assert "eu-west-1" in error and "us-east-1" in error


async def test_a_timeout_longer_than_the_interval_is_400(api, enterprise):
    response = await api.post(
        "/api/monitors", json={**BASE, "interval": 15, "timeout": 20}, headers=enterprise.alice.headers
    )
    assert response.status_code == 400 and response.json()["error"].startswith("timeout:")
    monitor = await create_monitor(api, enterprise.alice, interval=60, timeout=30)
    url = f"/api/monitors/{monitor['id']}"
    response = await api.put(url, json={"interval": 20}, headers=enterprise.alice.headers)
    assert response.status_code == 400 and response.json()["error"].startswith("timeout:")
    response = await api.put(url, json={"interval": 20, "timeout": 20}, headers=enterprise.alice.headers)
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (b"[]", "Request body must be a JSON object"),
        (b'"monitor"', "Request body must be a JSON object"),
        (b"{not json", "Request body is not valid JSON"),
        (b"", "Request body"),
    ],
)
async def test_a_body_that_is_not_an_object_is_400(api, enterprise, content, error):
    headers = {**enterprise.alice.headers, "Content-Type": "application/json"}
    response = await api.post("/api/monitors", content=content, headers=headers)
    assert response.status_code == 400 and response.json()["error"].startswith(error)
    monitor = await create_monitor(api, enterprise.alice)
    response = await api.put(f"/api/monitors/{monitor['id']}", content=content, headers=headers)
    assert response.status_code == 400 and response.json()["error"].startswith(error)


# --- url and config per type --------------------------------------------------------------------


def _assertion(**fields: Any) -> dict[str, Any]:
    return {"type": "status_code", "operator": "equals", "value": "200", **fields}


def _step(action: str, **fields: Any) -> dict[str, Any]:
    return {"action": action, **fields}


BAD_CONFIGS: dict[str, list[tuple[str | None, Any, str]]] = {
    # type: [(url or None for the type's good target, config, error prefix)]
    "HTTP": [
        (None, {"method": "FETCH"}, "config.method:"),
        (None, {"method": "post"}, "config.method:"),
        (None, {"headers": "X-Probe: 1"}, "config.headers:"),
        (None, {"headers": {"X-Probe": 1}}, "config.headers.X-Probe:"),
        (None, {"headers": {"X-Probe": None}}, "config.headers.X-Probe:"),
        (None, {"headers": {"bad name": "x"}}, "config.headers:"),
        (None, {"headers": {"": "x"}}, "config.headers:"),
        (None, {"headers": {"X-Colon:": "x"}}, "config.headers:"),
        (None, {"headers": {f"X-H{i}": "v" for i in range(51)}}, "config.headers:"),
        (None, {"headers": {"X-Probe": "a\r\nInjected: yes"}}, "config.headers:"),
        (None, {"headers": {"X-Probe": "a\nb"}}, "config.headers:"),
        (None, {"headers": {"X-Probe": "a\x00b"}}, "config.headers.X-Probe:"),
        (None, {"body": "b" * 65537}, "config.body:"),
        (None, {"body": {"key": "value"}}, "config.body:"),
        (None, {"followRedirects": "yes"}, "config.followRedirects:"),
        (None, {"followRedirects": 1}, "config.followRedirects:"),
        (None, {"verifyTls": "false"}, "config.verifyTls:"),
        (None, {"assertions": {"type": "status_code"}}, "config.assertions:"),
        (None, {"assertions": ["status_code == 200"]}, "config.assertions.0:"),
        (None, {"assertions": [_assertion(type="body")]}, "config.assertions.0.type:"),
        (None, {"assertions": [{"operator": "equals", "value": "200"}]}, "config.assertions.0.type:"),
        (None, {"assertions": [_assertion(operator="contains")]}, "config.assertions.0.operator:"),
        (None, {"assertions": [_assertion(operator="matches")]}, "config.assertions.0.operator:"),
        (
            None,
            {"assertions": [_assertion(type="response_time", operator="equals")]},
            "config.assertions.0.operator:",
        ),
        (
            None,
            {"assertions": [_assertion(type="response_time", operator="not_equals")]},
            "config.assertions.0.operator:",
        ),
        (
            None,
            {"assertions": [_assertion(type="json_path", path="$.a", operator="greater_than")]},
            "config.assertions.0.operator:",
        ),
        (
            None,
            {"assertions": [_assertion(type="header", name="content-type", operator="less_than")]},
            "config.assertions.0.operator:",
        ),
        (None, {"assertions": [_assertion(operator=None)]}, "config.assertions.0.operator:"),
        (None, {"assertions": [_assertion(value="OK")]}, "config.assertions.0.value:"),
        (None, {"assertions": [_assertion(value="2xx")]}, "config.assertions.0.value:"),
        (None, {"assertions": [_assertion(value=True)]}, "config.assertions.0.value:"),
        (None, {"assertions": [_assertion(value=None)]}, "config.assertions.0.value:"),
        (None, {"assertions": [_assertion(value=[200])]}, "config.assertions.0.value:"),
        (None, {"assertions": [{"type": "status_code", "operator": "equals"}]}, "config.assertions.0.value:"),
        (
            None,
            {"assertions": [_assertion(type="response_time", operator="less_than", value="fast")]},
            "config.assertions.0.value:",
        ),
        (None, {"assertions": [_assertion(type="json_path", path="$.[")]}, "config.assertions.0.path:"),
        (None, {"assertions": [_assertion(type="json_path", path="$..[?(")]}, "config.assertions.0.path:"),
        (None, {"assertions": [_assertion(type="json_path", path="")]}, "config.assertions.0.path:"),
        (None, {"assertions": [_assertion(type="json_path", path=5)]}, "config.assertions.0.path:"),
        (None, {"assertions": [_assertion(type="json_path")]}, "config.assertions.0.path:"),
        (
            None,
            {"assertions": [_assertion(type="header", operator="contains", value="json")]},
            "config.assertions.0.name:",
        ),
        (
            None,
            {"assertions": [_assertion(type="header", name="", value="json")]},
            "config.assertions.0.name:",
        ),
        (
            None,
            {"assertions": [_assertion(type="header", name="content type", value="x")]},
            "config.assertions.0.name:",
        ),
        (None, {"assertions": [_assertion(name="content-type")]}, "config.assertions.0.name:"),
        (None, {"assertions": [_assertion(), _assertion(operator="about")]}, "config.assertions.1.operator:"),
        (None, {"assertions": [_assertion()] * 21}, "config.assertions:"),
        (None, {"timeout": 5}, "config.timeout: unknown field for a HTTP monitor"),
        (None, {"steps": []}, "config.steps: unknown field"),
    ],
    "TCP": [
        ("db.example.com:5432", {}, "url:"),
        ("https://db.example.com:5432", {}, "url:"),
        ("tcp://db.example.com", {}, "url:"),
        ("tcp://db.example.com:", {}, "url:"),
        ("tcp://db.example.com:0", {}, "url:"),
        ("tcp://db.example.com:70000", {}, "url:"),
        ("tcp://db.example.com:http", {}, "url:"),
        ("tcp://db.example.com:\u0665\u0664\u0663\u0662", {}, "url:"),  # Arabic-Indic digits
        ("tcp://:5432", {}, "url:"),
        ("tcp://bad host:5432", {}, "url:"),
        ("tcp://[::1:5432", {}, "url:"),
        ("tcp://db.example.com:5432/path", {}, "url:"),
        (None, {"port": 5432}, "config.port: unknown field for a TCP monitor"),
        (None, {"headers": {}}, "config.headers:"),
    ],
    "PING": [
        ("https://db.example.com", {}, "url:"),
        ("db.example.com/path", {}, "url:"),
        ("db.example.com:80", {}, "url:"),
        ("bad host", {}, "url:"),
        ("-bad-.example.com", {}, "url:"),
        ("a" * 64 + ".example.com", {}, "url:"),
        (None, {"count": 0}, "config.count:"),
        (None, {"count": 11}, "config.count:"),
        (None, {"count": "3"}, "config.count:"),
        (None, {"count": 2.5}, "config.count:"),
        (None, {"interval": 0.1}, "config.interval:"),
        (None, {"interval": 6}, "config.interval:"),
        (None, {"packetTimeout": 11}, "config.packetTimeout:"),
        (None, {"packetTimeout": 0.1}, "config.packetTimeout:"),
        (None, {"lossThresholdPercent": 0}, "config.lossThresholdPercent:"),
        (None, {"lossThresholdPercent": 0.5}, "config.lossThresholdPercent:"),
        (None, {"lossThresholdPercent": 101}, "config.lossThresholdPercent:"),
        (None, {"ttl": 64}, "config.ttl: unknown field for a PING monitor"),
    ],
    "DNS": [
        ("https://example.com", {}, "url:"),
        ("example.com:53", {}, "url:"),
        ("exa mple.com", {}, "url:"),
        (None, {"recordType": "PTR"}, "config.recordType:"),
        (None, {"recordType": "a"}, "config.recordType:"),
        (None, {"resolver": "bad host:port"}, "config.resolver:"),
        (None, {"resolver": "1.1.1.1:70000"}, "config.resolver:"),
        (None, {"resolver": "1.1.1.1:0"}, "config.resolver:"),
        (None, {"resolver": "[2001:db8::1]x"}, "config.resolver:"),
        (None, {"resolver": ""}, "config.resolver:"),
        (None, {"resolver": 53}, "config.resolver:"),
        (None, {"protocol": "DOH"}, "config.protocol:"),
        (None, {"expectedValues": "1.2.3.4"}, "config.expectedValues:"),
        (None, {"expectedValues": [1]}, "config.expectedValues.0:"),
        (None, {"expectedValues": ["v"] * 51}, "config.expectedValues:"),
        (None, {"matchMode": "regex"}, "config.matchMode:"),
        (None, {"expectedRcode": "NOTAUTH"}, "config.expectedRcode:"),
        (None, {"server": "1.1.1.1"}, "config.server: unknown field for a DNS monitor"),
    ],
    "SSL": [
        ("https://example.com/path", {}, "url:"),
        ("https://example.com/?q=1", {}, "url:"),
        ("https://user@example.com", {}, "url:"),
        ("http://example.com", {}, "url:"),
        ("example.com/path", {}, "url:"),
        ("example.com:0", {}, "url:"),
        ("example.com:70000", {}, "url:"),
        ("https://[::1", {}, "url:"),
        (None, {"expiryThresholdDays": 0}, "config.expiryThresholdDays:"),
        (None, {"expiryThresholdDays": 366}, "config.expiryThresholdDays:"),
        (None, {"expiryThresholdDays": "14"}, "config.expiryThresholdDays:"),
        (None, {"caBundle": "not a certificate"}, "config.caBundle:"),
        (
            None,
            {"caBundle": "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"},
            "config.caBundle:",
        ),
        (None, {"caBundle": 1}, "config.caBundle:"),
        (None, {"serverName": "bad name"}, "config.serverName:"),
        (None, {"serverName": "-bad-.example.com"}, "config.serverName:"),
        (None, {"serverName": ""}, "config.serverName:"),
        (None, {"port": 443}, "config.port: unknown field for a SSL monitor"),
    ],
    "BROWSER": [
        ("ftp://shop.example.com/", {}, "url:"),
        ("shop.example.com", {}, "url:"),
        (None, {"steps": "click #buy"}, "config.steps:"),
        (None, {"steps": [{"selector": "#buy"}]}, "config.steps.0.action:"),
        (None, {"steps": [_step("hover", selector="#buy")]}, "config.steps.0.action:"),
        (None, {"steps": [_step("evaluate", script="alert(1)")]}, "config.steps.0.action:"),
        (None, {"steps": [_step("click")]}, "config.steps.0.selector:"),
        (None, {"steps": [_step("click", selector="")]}, "config.steps.0.selector:"),
        (None, {"steps": [_step("click", selector="#a", script="x")]}, "config.steps.0.script:"),
        (None, {"steps": [_step("goto", url="javascript:alert(1)")]}, "config.steps.0.url:"),
        (None, {"steps": [_step("goto", url="file:///etc/passwd")]}, "config.steps.0.url:"),
        (None, {"steps": [_step("goto")]}, "config.steps.0.url:"),
        (None, {"steps": [_step("fill", selector="#q")]}, "config.steps.0.value:"),
        (None, {"steps": [_step("select", selector="#q", value=1)]}, "config.steps.0.value:"),
        (None, {"steps": [_step("press")]}, "config.steps.0.key:"),
        (None, {"steps": [_step("wait_for_selector", selector="#a", state="gone")]}, "config.steps.0.state:"),
        (None, {"steps": [_step("expect_text")]}, "config.steps.0.text:"),
        (None, {"steps": [_step("expect_url", value="")]}, "config.steps.0.value:"),
        (None, {"steps": [_step("screenshot", timeout=61)]}, "config.steps.0.timeout:"),
        (None, {"steps": [_step("click", selector="#a", timeout=0.05)]}, "config.steps.0.timeout:"),
        (
            None,
            {"steps": [_step("screenshot"), _step("click", selector="#a", timeout="5")]},
            "config.steps.1.timeout:",
        ),
        (None, {"steps": [_step("screenshot")] * 51}, "config.steps:"),
        (None, {"stepTimeout": 0}, "config.stepTimeout:"),
        (None, {"stepTimeout": 61}, "config.stepTimeout:"),
        (None, {"viewport": {"width": 100, "height": 100}}, "config.viewport.width:"),
        (None, {"viewport": {"width": 1280, "height": 100}}, "config.viewport.height:"),
        (None, {"viewport": {"width": 1280}}, "config.viewport.height:"),
        (None, {"viewport": "1280x720"}, "config.viewport:"),
        (None, {"headers": {}}, "config.headers: unknown field for a BROWSER monitor"),
    ],
    "HEARTBEAT": [
        (None, {"grace": 60}, "config.grace: unknown field for a HEARTBEAT monitor"),
        ("not a url", {}, "url:"),
    ],
    "LLM": [
        (None, {"budget": 10}, "config.budget: unknown field for a LLM monitor"),
        ("ftp://llm.example.com", {}, "url:"),
    ],
}


@pytest.mark.parametrize("monitor_type", list(BAD_CONFIGS))
async def test_bad_targets_and_configs_per_type_are_400_naming_the_field(api, enterprise, monitor_type):
    results = []
    for url, config, prefix in BAD_CONFIGS[monitor_type]:
        body = {**BASE, "type": monitor_type, "url": url or TARGETS[monitor_type], "config": config}
        response = await api.post("/api/monitors", json=body, headers=enterprise.alice.headers)
        results.append(((url, config), response.status_code, response.json().get("error", ""), prefix))
    assert _problems(results) == []
    assert (await api.get("/api/monitors", headers=enterprise.alice.headers)).json()["data"] == []


@pytest.mark.parametrize("monitor_type", list(BAD_CONFIGS))
async def test_bad_configs_on_update_are_400_and_change_nothing(api, enterprise, monitor_type):
    monitor = await create_monitor(api, enterprise.alice, type=monitor_type, url=TARGETS[monitor_type])
    url = f"/api/monitors/{monitor['id']}"
    before = (await api.get(url, headers=enterprise.alice.headers)).json()
    results = []
    for target, config, prefix in BAD_CONFIGS[monitor_type]:
        body = {"config": config} if target is None else {"url": target}
        response = await api.put(url, json=body, headers=enterprise.alice.headers)
        results.append(((target, config), response.status_code, response.json().get("error", ""), prefix))
    assert _problems(results) == []
    assert (await api.get(url, headers=enterprise.alice.headers)).json() == before


# --- good targets and configs -------------------------------------------------------------------

CA_PEM = trustme.CA().cert_pem.bytes().decode()

GOOD: list[tuple[str, str | None, Any, Any]] = [
    # type, url, config sent, (stored url, stored config)
    ("HTTP", "http://127.0.0.1:8080/health", None, ("http://127.0.0.1:8080/health", {})),
    ("HTTP", "https://[2001:db8::1]/", {}, ("https://[2001:db8::1]/", {})),
    (
        "HTTP",
        "https://api.example.com/v1?x=1",
        {
            "method": "POST",
            "headers": {"Authorization": "Bearer token", "X-Empty": ""},
            "body": '{"key": "value"}',
            "followRedirects": False,
            "verifyTls": True,
            "assertions": [
                {"type": "status_code", "operator": "equals", "value": 200},
                {"type": "status_code", "operator": "less_than", "value": "400"},
                {"type": "response_time", "operator": "less_than", "value": 500.5},
                {"type": "json_path", "path": "$.data.status", "operator": "equals", "value": "ok"},
                {"type": "json_path", "path": "$.data.ready", "operator": "equals", "value": True},
                {
                    "type": "json_path",
                    "path": "$.items[?(@.id == 1)].name",
                    "operator": "contains",
                    "value": 7,
                },
                {"type": "header", "name": "content-type", "operator": "contains", "value": "json"},
            ],
        },
        (
            "https://api.example.com/v1?x=1",
            {
                "method": "POST",
                "headers": {"Authorization": "Bearer token", "X-Empty": ""},
                "body": '{"key": "value"}',
                "followRedirects": False,
                "verifyTls": True,
                "assertions": [
                    {"type": "status_code", "operator": "equals", "value": "200"},
                    {"type": "status_code", "operator": "less_than", "value": "400"},
                    {"type": "response_time", "operator": "less_than", "value": "500.5"},
                    {"type": "json_path", "path": "$.data.status", "operator": "equals", "value": "ok"},
                    {"type": "json_path", "path": "$.data.ready", "operator": "equals", "value": "true"},
                    {
                        "type": "json_path",
                        "path": "$.items[?(@.id == 1)].name",
                        "operator": "contains",
                        "value": "7",
                    },
                    {"type": "header", "name": "content-type", "operator": "contains", "value": "json"},
                ],
            },
        ),
    ),
    # Explicit nulls mean "the default": they are not stored (the agent reads a missing key).
    (
        "HTTP",
        TARGETS["HTTP"],
        {"method": None, "followRedirects": None, "body": None},
        (TARGETS["HTTP"], {}),
    ),
    ("TCP", "tcp://db.example.com:5432", {}, ("tcp://db.example.com:5432", {})),
    ("TCP", "tcp://[2001:db8::1]:5432", None, ("tcp://[2001:db8::1]:5432", {})),
    ("TCP", "tcp://10.0.0.1:1", None, ("tcp://10.0.0.1:1", {})),
    ("PING", "db.example.com", None, ("db.example.com", {})),
    ("PING", "192.0.2.1", None, ("192.0.2.1", {})),
    ("PING", "[2001:db8::1]", None, ("2001:db8::1", {})),  # the agent resolves bare addresses
    (
        "PING",
        "2001:db8::1",
        {"count": 10, "interval": 0.2, "packetTimeout": 10, "lossThresholdPercent": 50},
        ("2001:db8::1", {"count": 10, "interval": 0.2, "packetTimeout": 10, "lossThresholdPercent": 50}),
    ),
    (
        "DNS",
        "_sip._tcp.example.com",
        {
            "recordType": "SRV",
            "resolver": "[2001:db8::53]:5353",
            "protocol": "TCP",
            "expectedValues": ["10 60 5060 sip.example.com."],
            "matchMode": "exact",
            "expectedRcode": "NXDOMAIN",
        },
        (
            "_sip._tcp.example.com",
            {
                "recordType": "SRV",
                "resolver": "[2001:db8::53]:5353",
                "protocol": "TCP",
                "expectedValues": ["10 60 5060 sip.example.com."],
                "matchMode": "exact",
                "expectedRcode": "NXDOMAIN",
            },
        ),
    ),
    ("DNS", "example.com.", {"resolver": "1.1.1.1"}, ("example.com.", {"resolver": "1.1.1.1"})),
    ("SSL", "example.com", None, ("example.com", {})),
    ("SSL", "example.com:8443", None, ("example.com:8443", {})),
    ("SSL", "https://example.com:8443/", None, ("https://example.com:8443/", {})),
    ("SSL", "[2001:db8::1]:443", None, ("[2001:db8::1]:443", {})),
    (
        "SSL",
        "example.com",
        {"expiryThresholdDays": 30, "caBundle": CA_PEM, "serverName": "www.example.com"},
        ("example.com", {"expiryThresholdDays": 30, "caBundle": CA_PEM, "serverName": "www.example.com"}),
    ),
    (
        "BROWSER",
        "https://shop.example.com/",
        {
            "steps": [
                {"action": "goto", "url": "https://shop.example.com/cart"},
                {"action": "click", "selector": "#buy", "timeout": 5},
                {"action": "fill", "selector": "#q", "value": "shoes"},
                {"action": "press", "key": "Enter"},
                {"action": "select", "selector": "#size", "value": "42"},
                {"action": "wait_for_selector", "selector": ".result", "state": "visible"},
                {"action": "expect_text", "text": "Thank you"},
                {"action": "expect_url", "value": "/done"},
                {"action": "expect_title", "value": "Shop"},
                {"action": "screenshot"},
            ],
            "stepTimeout": 0.5,
            "viewport": {"width": 320, "height": 2160},
        },
        (
            "https://shop.example.com/",
            {
                "steps": [
                    {"action": "goto", "url": "https://shop.example.com/cart"},
                    {"action": "click", "selector": "#buy", "timeout": 5.0},
                    {"action": "fill", "selector": "#q", "value": "shoes"},
                    {"action": "press", "key": "Enter"},
                    {"action": "select", "selector": "#size", "value": "42"},
                    {"action": "wait_for_selector", "selector": ".result", "state": "visible"},
                    {"action": "expect_text", "text": "Thank you"},
                    {"action": "expect_url", "value": "/done"},
                    {"action": "expect_title", "value": "Shop"},
                    {"action": "screenshot"},
                ],
                "stepTimeout": 0.5,
                "viewport": {"width": 320, "height": 2160},
            },
        ),
    ),
    ("HEARTBEAT", None, None, (None, {})),
    ("HEARTBEAT", "https://cron.example.com/job", {}, ("https://cron.example.com/job", {})),
    ("LLM", None, {}, (None, {})),
]


async def test_good_targets_and_configs_are_stored_normalized(api, enterprise):
    stored = []
    for monitor_type, url, config, _ in GOOD:
        body: dict[str, Any] = {**BASE, "type": monitor_type, "url": url}
        if config is not None:
            body["config"] = config
        response = await api.post("/api/monitors", json=body, headers=enterprise.alice.headers)
        assert response.status_code == 201, (monitor_type, url, config, response.text)
        monitor_id = response.json()["data"]["id"]
        detail = (await api.get(f"/api/monitors/{monitor_id}", headers=enterprise.alice.headers)).json()[
            "data"
        ]
        stored.append((detail["url"], detail["config"]))
    assert stored == [expected for *_, expected in GOOD]


async def test_a_config_update_replaces_the_whole_config(api, enterprise):
    monitor = await create_monitor(
        api, enterprise.alice, config={"headers": {"X-A": "1"}, "assertions": [_assertion(value=204)]}
    )
    assert monitor["config"]["assertions"][0]["value"] == "204"
    url = f"/api/monitors/{monitor['id']}"
    response = await api.put(
        url, json={"config": {"followRedirects": False}}, headers=enterprise.alice.headers
    )
    assert response.status_code == 200 and response.json()["data"]["config"] == {"followRedirects": False}

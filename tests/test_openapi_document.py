"""The served OpenAPI document: no FastAPI 422s, the bearer scheme on every authenticated operation,
each operation's error statuses with the `{"error"}` body, request rules as the server applies
them, and answers that match their documented schemas (reliability/test_openapi_fuzz.py tries far more
inputs against a live server on PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jsonschema_rs  # comes with schemathesis
import pytest

from control_plane.api.ai_insight_schemas import InsightUpdate
from control_plane.api.alert_channel_schemas import AlertChannelCreate, AlertChannelUpdate
from control_plane.api.billing_schemas import CheckoutRequest
from control_plane.api.cost_alert_schemas import CostAlertPut
from control_plane.api.incident_schemas import IncidentUpdateCreate
from control_plane.api.maintenance_schemas import MaintenanceCreate, MaintenanceUpdate
from control_plane.api.monitor_schemas import MonitorCreate, MonitorUpdate
from control_plane.api.page_incident_schemas import (
    PageIncidentCreate,
    PageIncidentEdit,
    PageIncidentUpdateCreate,
)
from control_plane.api.schemas import (
    ApiKeyCreate,
    OrganizationCreate,
    OrganizationUpdate,
    RequestModel,
    TeamInvite,
)
from control_plane.api.status_page_schemas import StatusPageCreate, StatusPageUpdate
from tests.monitor_tools import create_monitor, insert_incident, record, set_plan

ERROR_BODY = {"$ref": "#/components/schemas/ErrorResponse"}

# What each operation can answer besides its success, as the reference and the code say: pinned,
# so that a change to the contract is a change to this table too.
ERROR_STATUSES: dict[tuple[str, str], set[int]] = {
    ("GET", "/api/organization"): {401, 404, 429},
    ("POST", "/api/organization"): {400, 401, 403, 409, 413, 429},
    ("PATCH", "/api/organization"): {400, 401, 403, 404, 409, 413, 429},
    ("GET", "/api/api-keys"): {401, 429},
    ("POST", "/api/api-keys"): {400, 401, 403, 413, 429},
    ("DELETE", "/api/api-keys/{key_id}"): {401, 403, 404, 429},
    ("GET", "/api/team"): {401, 404, 429},
    ("POST", "/api/team/invite"): {400, 401, 403, 404, 409, 413, 429},
    ("DELETE", "/api/team/{member_id}"): {400, 401, 403, 404, 429},
    ("GET", "/api/billing"): {401, 404, 429},
    ("POST", "/api/billing/checkout"): {400, 401, 403, 404, 413, 429, 501},
    ("POST", "/api/billing/portal"): {401, 403, 404, 429, 501, 502},
    ("POST", "/api/billing/webhook"): {400, 401, 413, 429, 501},
    ("GET", "/api/monitors"): {401, 404, 429},
    ("POST", "/api/monitors"): {400, 401, 403, 404, 413, 429},
    ("GET", "/api/monitors/{monitor_id}"): {401, 404, 429},
    ("PUT", "/api/monitors/{monitor_id}"): {400, 401, 403, 404, 413, 429},
    ("DELETE", "/api/monitors/{monitor_id}"): {401, 403, 404, 429},
    ("POST", "/api/monitors/{monitor_id}/pause"): {401, 403, 404, 429},
    ("POST", "/api/monitors/{monitor_id}/resume"): {401, 403, 404, 429},
    ("GET", "/api/monitors/{monitor_id}/checks"): {400, 401, 404, 429},
    ("GET", "/api/monitors/{monitor_id}/incidents"): {401, 404, 429},
    ("GET", "/api/monitors/{monitor_id}/performance"): {400, 401, 404, 429},
    ("GET", "/api/monitors/{monitor_id}/checks/{check_id}/screenshot"): {401, 404, 429},
    ("GET", "/api/dashboard/stats"): {401, 404, 429},
    ("GET", "/api/incidents"): {400, 401, 404, 429},
    ("GET", "/api/incidents/{incident_id}"): {401, 404, 429},
    ("POST", "/api/incidents/{incident_id}/updates"): {400, 401, 403, 404, 413, 429},
    ("POST", "/api/incidents/{incident_id}/acknowledge"): {401, 403, 404, 409, 429},
    ("GET", "/api/monitors/{monitor_id}/sla"): {400, 401, 404, 429},
    ("GET", "/api/maintenance"): {400, 401, 404, 429},
    ("POST", "/api/maintenance"): {400, 401, 403, 404, 413, 429},
    ("PATCH", "/api/maintenance/{window_id}"): {400, 401, 403, 404, 413, 429},
    ("DELETE", "/api/maintenance/{window_id}"): {401, 403, 404, 429},
    ("POST", "/api/status-pages/{slug}/incidents"): {400, 401, 403, 404, 413, 429},
    ("GET", "/api/status-pages/{slug}/incidents"): {400, 401, 404, 429},
    ("GET", "/api/status-pages/{slug}/incidents/{incident_id}"): {401, 404, 429},
    ("PATCH", "/api/status-pages/{slug}/incidents/{incident_id}"): {400, 401, 403, 404, 413, 429},
    ("DELETE", "/api/status-pages/{slug}/incidents/{incident_id}"): {401, 403, 404, 429},
    ("POST", "/api/status-pages/{slug}/incidents/{incident_id}/updates"): {400, 401, 403, 404, 413, 429},
    ("GET", "/api/status-pages"): {401, 404, 429},
    ("POST", "/api/status-pages"): {400, 401, 403, 404, 409, 413, 429},
    ("GET", "/api/status-pages/{slug}"): {404, 429},
    ("PUT", "/api/status-pages/{slug}"): {400, 401, 403, 404, 409, 413, 429},
    ("DELETE", "/api/status-pages/{slug}"): {401, 403, 404, 429},
    ("POST", "/api/status-pages/{slug}/verify-domain"): {400, 401, 403, 404, 429},
    ("GET", "/api/status-pages/{slug}/verify-domain"): {400, 401, 404, 429},
    ("GET", "/api/alert-channels"): {401, 404, 429},
    ("POST", "/api/alert-channels"): {400, 401, 403, 404, 413, 429},
    ("GET", "/api/alert-channels/{channel_id}"): {401, 404, 429},
    ("PATCH", "/api/alert-channels/{channel_id}"): {400, 401, 403, 404, 413, 429},
    ("DELETE", "/api/alert-channels/{channel_id}"): {401, 403, 404, 429},
    ("POST", "/api/alert-channels/{channel_id}/test"): {401, 403, 404, 429},
    ("GET", "/api/alert-channels/{channel_id}/deliveries"): {400, 401, 404, 429},
    ("GET", "/api/monitors/{monitor_id}/insights"): {400, 401, 404, 429},
    ("PATCH", "/api/monitors/{monitor_id}/insights/{insight_id}"): {400, 401, 403, 404, 413, 429},
    ("GET", "/api/monitors/{monitor_id}/cost-alert"): {400, 401, 404, 429},
    ("PUT", "/api/monitors/{monitor_id}/cost-alert"): {400, 401, 403, 404, 413, 429},
    ("DELETE", "/api/monitors/{monitor_id}/cost-alert"): {400, 401, 403, 404, 429},
    ("GET", "/api/monitors/{monitor_id}/ai-usage"): {400, 401, 404, 429},
    ("GET", "/api/monitors/{monitor_id}/ai-events"): {400, 401, 404, 429},
    ("POST", "/api/ai/otlp/{monitorId}/v1/traces"): {400, 404, 413, 415, 429, 503},
    ("POST", "/api/ai/ingest/{monitorId}"): {400, 404, 413, 429, 503},
    ("GET", "/badge/{monitorId}/status.svg"): {404, 429},
    ("GET", "/badge/{monitorId}/uptime.svg"): {400, 404, 429},
    ("GET", "/badge/{monitorId}/shields.json"): {400, 404, 429},
    ("GET", "/status/{slug}/feed.rss"): {404, 429},
    ("GET", "/status/{slug}/feed.atom"): {404, 429},
    ("POST", "/status/{slug}/subscribe"): {400, 404, 413, 429},
    ("GET", "/api/status-pages/{slug}/subscribers"): {400, 401, 404, 429},
    ("DELETE", "/api/status-pages/{slug}/subscribers/{subscriber_id}"): {401, 403, 404, 429},
    **{
        (method, f"/api/heartbeat/{{token}}{suffix}"): {400, 404, 429}
        for method in ("GET", "POST")
        for suffix in ("", "/start", "/fail", "/{exitCode}")
    },
}
PUBLIC = {("POST", "/api/billing/webhook")}  # RevenueCat's secret, not an API key
# The job's token in the path is all a heartbeat needs: no scheme at all.
UNAUTHENTICATED = {key for key in ERROR_STATUSES if key[1].startswith("/api/heartbeat/")}
OTLP_TRACES = ("POST", "/api/ai/otlp/{monitorId}/v1/traces")
UNAUTHENTICATED.add(OTLP_TRACES)  # the monitor id routes an OTLP export, as it does the ingest
UNAUTHENTICATED.add(("POST", "/api/ai/ingest/{monitorId}"))
# No key needed (a public page), or one of the page's organization (a private page).
OPTIONAL_KEY = {("GET", "/api/status-pages/{slug}")}
UNAUTHENTICATED |= {key for key in ERROR_STATUSES if key[1].startswith("/badge/")}  # opted in: public
UNAUTHENTICATED |= {("GET", "/status/{slug}/feed.rss"), ("GET", "/status/{slug}/feed.atom")}
UNAUTHENTICATED.add(("POST", "/status/{slug}/subscribe"))  # a visitor's, rate-limited per address
REQUEST_MODELS: list[type[RequestModel]] = [
    MonitorCreate,
    MonitorUpdate,
    OrganizationCreate,
    OrganizationUpdate,
    ApiKeyCreate,
    TeamInvite,
    CheckoutRequest,
    IncidentUpdateCreate,
    MaintenanceCreate,
    MaintenanceUpdate,
    StatusPageCreate,
    StatusPageUpdate,
    PageIncidentCreate,
    PageIncidentUpdateCreate,
    PageIncidentEdit,
    AlertChannelCreate,
    AlertChannelUpdate,
    InsightUpdate,
    CostAlertPut,
]


@pytest.fixture
async def document(api: httpx.AsyncClient) -> dict[str, Any]:
    response = await api.get("/api/openapi.json")
    assert response.status_code == 200
    served: dict[str, Any] = response.json()
    return served


def operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method.upper(), path): operation
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    }


async def test_no_operation_promises_fastapi_422(document):
    for key, operation in operations(document).items():
        assert "422" not in operation["responses"], key
    assert not {"HTTPValidationError", "ValidationError"} & set(document["components"]["schemas"])


async def test_the_bearer_scheme_guards_every_authenticated_operation(document):
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearerAuth"]["type"] == "http" and schemes["bearerAuth"]["scheme"] == "bearer"
    assert schemes["revenueCatWebhook"] == {
        **schemes["revenueCatWebhook"],
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
    }
    assert "security" not in document  # per operation: the public ones have none
    for key, operation in operations(document).items():
        expected = [{"revenueCatWebhook": []}] if key in PUBLIC else [{"bearerAuth": []}]
        if key in UNAUTHENTICATED:
            expected = []
        if key in OPTIONAL_KEY:
            expected = [{}, {"bearerAuth": []}]
        assert operation.get("security") == expected, key


async def test_every_operation_documents_its_error_statuses_with_the_error_body(document):
    documented = operations(document)
    assert set(documented) == set(ERROR_STATUSES)
    for key, operation in documented.items():
        errors = {int(status) for status in operation["responses"] if not status.startswith("2")}
        assert errors == ERROR_STATUSES[key], key
        for status in errors:
            response = operation["responses"][str(status)]
            assert response["description"], (key, status)
            expected = {"application/json": {"schema": ERROR_BODY}}
            if key == OTLP_TRACES and status in (400, 404, 429, 503):  # a protobuf export's: an rpc Status
                expected["application/x-protobuf"] = {"schema": {"type": "string", "format": "binary"}}
            if key == ("POST", "/status/{slug}/subscribe"):  # an HTML form's post: an HTML page
                expected["text/html"] = {"schema": {"type": "string"}}
            assert response["content"] == expected, (key, status)
        assert "Retry-After" in operation["responses"]["429"]["headers"], key
        successes = [status for status in operation["responses"] if status.startswith("2")]
        assert len(successes) == 1, key


async def test_every_bearer_operation_refuses_a_request_without_a_key(api, document, runtime):
    for (method, path), operation in operations(document).items():
        if (method, path) in PUBLIC | UNAUTHENTICATED | OPTIONAL_KEY:
            continue
        url = path.replace("{monitor_id}", "mon_x").replace("{check_id}", "chk_x")
        url = url.replace("{key_id}", "key_x").replace("{member_id}", "mem_x")
        url = url.replace("{incident_id}", "inc_x").replace("{window_id}", "mw_x")
        url = url.replace("{channel_id}", "ac_x")
        body = {"json": {}} if "requestBody" in operation else {}
        await runtime.rate_limiter.reset()  # more operations than the address's failed-key budget
        response = await api.request(method, url, **body)
        assert response.status_code == 401, (method, path, response.text)
        assert set(response.json()) == {"error"}


async def test_optional_fields_are_nullable_exactly_where_the_server_takes_null(document):
    schemas = document["components"]["schemas"]
    for model in REQUEST_MODELS:
        for name, field_schema in schemas[model.__name__]["properties"].items():
            nullable = {"type": "null"} in field_schema.get("anyOf", [])
            assert nullable == (name in model.nullable), f"{model.__name__}.{name}"
            assert "default" not in field_schema or field_schema["default"] is not None or nullable


async def test_request_rules_are_stated_as_the_server_applies_them(api, world, document):
    schemas = document["components"]["schemas"]
    assert schemas["CheckoutRequest"]["properties"]["plan"]["enum"] == ["PRO", "BUSINESS", "ENTERPRISE"]
    email = schemas["TeamInvite"]["properties"]["email"]
    assert email["format"] == "email" and email["maxLength"] == 320
    checks = document["paths"]["/api/monitors/{monitor_id}/checks"]["get"]["parameters"]
    date_filters = {
        parameter["name"]: parameter["schema"] for parameter in checks if parameter["in"] == "query"
    }
    for name in ("from", "to"):
        assert date_filters[name]["type"] == "string" and "anyOf" not in date_filters[name]
    monitor = await create_monitor(api, world.alice)
    url = f"/api/monitors/{monitor['id']}/checks"

    async def status_of(name: str, value: str) -> int:
        response = await api.get(url, params={name: value}, headers=world.alice.headers)
        return response.status_code

    pattern = jsonschema_rs.validator_for(date_filters["from"])
    for value in ("2025-06-15", "2025-06-15T12:00:00Z", "2025-06-15T14:00:00.123+02:00", "2025-06-15t12:00z"):
        assert pattern.is_valid(value) and await status_of("from", value) == 200, value
    for value in ("20250615", "2025-W24-7", "2025-06-15 12:00", "2025-06-15T12:00:00+0200", "0000-01-01"):
        assert not pattern.is_valid(value) and await status_of("to", value) == 400, value

    names = jsonschema_rs.validator_for(schemas["ApiKeyCreate"]["properties"]["name"])
    for value in ("CI", "CI/CD pipeline", "Zoë's key"):
        assert names.is_valid(value), value
    for value in ("", " ", " padded", "padded ", "tab\there", "bell\x07"):
        assert not names.is_valid(value), repr(value)
    emails = jsonschema_rs.validator_for(email)
    assert emails.is_valid("nora@example.com") and not emails.is_valid(" nora@example.com")


async def test_a_body_that_is_not_utf8_text_is_a_400_that_says_so(api, world):
    response = await api.post(
        "/api/api-keys",
        content=b'{"name": "\xff"}',
        headers={**world.alice.headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json() == {"error": "Request body is not valid JSON: it must be UTF-8 text"}


async def test_a_fixed_path_answers_only_its_own_methods(api, world):
    # DELETE /api/team/{member_id} would take member_id "invite"; the document's /api/team/invite
    # (POST only) is matched first, as OpenAPI matches concrete paths before templated ones.
    for method in ("DELETE", "GET", "OPTIONS"):
        response = await api.request(method, "/api/team/invite", headers=world.alice.headers)
        assert response.status_code == 405, method
        assert response.headers["allow"] == "POST" and response.json() == {"error": "Method not allowed"}
    assert (await api.delete("/api/team/mem_nobody", headers=world.alice.headers)).status_code == 404


class Answers:
    """Real answers checked against the schemas the document gives their operation and status."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.checked: set[tuple[str, str, int]] = set()

    def check(self, method: str, path: str, response: httpx.Response) -> None:
        operation = self.document["paths"][path][method.lower()]
        documented = operation["responses"].get(str(response.status_code))
        assert documented is not None, (
            f"{method} {path}: undocumented {response.status_code}: {response.text}"
        )
        schema = documented["content"]["application/json"]["schema"]
        validator = jsonschema_rs.validator_for({**schema, "components": self.document["components"]})
        errors = [
            f"{error.message} at {list(error.instance_path)}"
            for error in validator.iter_errors(response.json())
        ]
        assert not errors, f"{method} {path} {response.status_code}: {errors}\n{response.text}"
        for name, header in documented.get("headers", {}).items():
            if header.get("required"):
                assert name in response.headers, f"{method} {path}: no {name} header"
        self.checked.add((method, path, response.status_code))


async def test_answers_match_their_documented_schemas(api, world, database, document):
    await set_plan(database, world.org_a, "ENTERPRISE")
    answers = Answers(document)
    headers = world.alice.headers

    async def call(method: str, path: str, url: str | None = None, **kwargs: Any) -> httpx.Response:
        response = await api.request(method, url or path, headers=headers, **kwargs)
        answers.check(method, path, response)
        return response

    http = (
        await call(
            "POST", "/api/monitors", json={"name": "API", "url": "https://example.com/", "type": "HTTP"}
        )
    ).json()
    await call("POST", "/api/monitors", json={"name": "Cron", "type": "HEARTBEAT"})
    await call("POST", "/api/monitors", json={"name": "LLM app", "type": "LLM"})
    now = datetime.now(UTC)
    await record(
        database,
        http["data"]["id"],
        {"checked_at": now, "dns": 4.0, "tcp": 6.5, "total": 90.0, "size": 1024},
        {
            "checked_at": now - timedelta(minutes=1),
            "status": "DOWN",
            "status_code": 503,
            "error_kind": "http_status",
            "error_message": "HTTP 503 (expected 200)",
        },
    )
    await insert_incident(database, world.org_a, http["data"]["id"], now - timedelta(hours=1), now)
    await insert_incident(database, world.org_a, http["data"]["id"], now - timedelta(minutes=1))
    monitor = "/api/monitors/{monitor_id}"
    one = f"/api/monitors/{http['data']['id']}"

    for path in (
        "/api/monitors",
        "/api/organization",
        "/api/api-keys",
        "/api/team",
        "/api/billing",
        "/api/dashboard/stats",
    ):
        await call("GET", path)
    await call("GET", monitor, one)
    await call("GET", f"{monitor}/checks", f"{one}/checks", params={"limit": 1})
    await call("GET", f"{monitor}/incidents", f"{one}/incidents")
    await call("GET", f"{monitor}/performance", f"{one}/performance")
    await call("PUT", monitor, one, json={"name": "API (renamed)", "expectedStatus": None})
    await call("POST", f"{monitor}/pause", f"{one}/pause")
    await call("POST", f"{monitor}/resume", f"{one}/resume")
    await call("GET", monitor, "/api/monitors/mon_missing")
    await call("GET", f"{monitor}/checks", f"{one}/checks", params={"from": "2025-02-30"})
    await call("POST", "/api/monitors", json={"name": "x", "type": "HTTP", "interval": 60.0})
    await call("PATCH", "/api/organization", json={"name": "Org A (renamed)"})
    await call("POST", "/api/organization", json={"name": "Second", "slug": "second"})
    key = (await call("POST", "/api/api-keys", json={"name": "Spare"})).json()["data"]
    await call("DELETE", "/api/api-keys/{key_id}", f"/api/api-keys/{key['id']}")
    invited = await call("POST", "/api/team/invite", json={"email": world.nora.email, "role": "VIEWER"})
    await call("DELETE", "/api/team/{member_id}", f"/api/team/{invited.json()['data']['id']}")
    await call("POST", "/api/billing/checkout", json={"plan": "PRO"})  # 501: no RevenueCat here
    await call("DELETE", monitor, one)
    assert (await api.get("/api/monitors", headers=world.vera.headers)).status_code == 200
    answers.check(
        "POST", "/api/monitors", await api.post("/api/monitors", json={}, headers=world.vera.headers)
    )
    answers.check("GET", "/api/monitors", await api.get("/api/monitors"))

    statuses = {status for _, _, status in answers.checked}
    assert statuses >= {200, 201, 400, 401, 403, 404, 409, 501}


# A valid body for each operation a link leads to or starts from, for alice's organization (a link
# into an operation that takes a body is only followed with one).
def _link_bodies(monitor_id: str, invitee: str) -> dict[str, dict[str, Any]]:
    return {
        "create_monitor": {"name": "Linked", "type": "LLM"},  # an LLM monitor: its AI reads answer too
        "update_monitor": {"name": "Linked (renamed)"},
        "put_cost_alert": {"dailyBudget": 5.0, "alertEmails": "alice@a.example"},
        "create_api_key": {"name": "Linked"},
        "invite_member": {"email": invitee, "role": "VIEWER"},
        "create_maintenance_window": {
            "title": "Linked",
            "startsAt": "2030-01-01T00:00:00.000Z",
            "endsAt": "2030-01-01T01:00:00.000Z",
        },
        "update_maintenance_window": {"title": "Linked (renamed)"},
        "create_alert_channel": {
            "name": "Linked",
            "type": "WEBHOOK",
            "config": {"url": "https://example.com/h"},
        },
        "update_alert_channel": {"name": "Linked (renamed)"},
        "create_status_page": {
            "name": "Linked",
            "slug": "linked",
            "monitors": [monitor_id],
            "customDomain": "status.linked.example",
        },
        "update_status_page": {"name": "Linked (renamed)"},
        "declare_page_incident": {
            "title": "Linked",
            "impact": "minor",
            "message": "Looking",
            "componentIds": [],
        },
        "edit_page_incident": {"title": "Linked (renamed)"},
        "post_page_incident_update": {"status": "identified", "message": "Found it"},
    }


async def test_links_carry_what_each_create_made_to_the_operations_that_take_it(api, world, document):
    """Each link's expressions, resolved as a client (schemathesis's stateful phase) resolves them, name
    the resource just made: every operation it leads to finds it, and after a delete no longer does."""
    by_id = {
        operation["operationId"]: (method.upper(), path, operation)
        for (method, path), operation in operations(document).items()
    }
    headers = world.alice.headers
    monitor = await create_monitor(api, world.alice)
    bodies = _link_bodies(monitor["id"], world.nora.email)

    async def send(operation_id: str, path_parameters: dict[str, str]) -> httpx.Response:
        method, path, _ = by_id[operation_id]
        body = {"json": bodies[operation_id]} if operation_id in bodies else {}
        return await api.request(method, path.format(**path_parameters), headers=headers, **body)

    def links_of(operation_id: str) -> dict[str, Any]:
        responses = by_id[operation_id][2]["responses"]
        return next(response for code, response in responses.items() if code.startswith("2")).get("links", {})

    def resolve(
        links: dict[str, Any], target: str, sent: dict[str, str], answer: httpx.Response
    ) -> dict[str, str]:
        resolved = {}
        for name, expression in links[target]["parameters"].items():
            if expression.startswith("$request.path."):
                resolved[name] = sent[expression.removeprefix("$request.path.")]
            else:
                pointer = expression.removeprefix("$response.body#")
                value: Any = answer.json()
                for part in pointer.strip("/").split("/"):
                    value = value[part]
                resolved[name] = value
        return resolved

    async def follow(source: str, sent: dict[str, str], answer: httpx.Response) -> None:
        links = links_of(source)
        # What a delete leads to comes last, so that the others still find the resource.
        for target in sorted(links, key=lambda name: by_id[name][0] == "DELETE"):
            parameters = resolve(links, target, sent, answer)
            response = await send(target, parameters)
            assert 200 <= response.status_code < 300, (source, target, response.status_code, response.text)
            if response.status_code == 201:  # a page's incident: what it made is followed in turn
                await follow(target, parameters, response)
                continue
            for after in links_of(target):
                again = await send(after, resolve(links_of(target), after, parameters, response))
                if by_id[target][0] == "DELETE":
                    assert again.status_code == 404, (target, after, again.status_code, again.text)
                else:  # an update, read back
                    assert 200 <= again.status_code < 300, (target, after, again.status_code, again.text)

    creates = [name for name in by_id if by_id[name][0] == "POST" and links_of(name)]
    assert set(creates) >= {"create_monitor", "create_status_page", "declare_page_incident", "invite_member"}
    for source in creates:
        if source == "declare_page_incident":
            continue  # followed from the page it belongs to
        answer = await send(source, {})
        assert answer.status_code == 201, (source, answer.text)
        await follow(source, {}, answer)

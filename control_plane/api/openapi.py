"""The served OpenAPI document: FastAPI's, completed with what it cannot see for itself.

FastAPI documents the response models and the statuses routes declare. What the shared
dependencies and the error handlers answer is added here, so that no route has to repeat it: the
bearer scheme and 401/403/404/429 from the authenticating dependency (deps.AUTH_ERRORS), 400 for
a body or query that breaks a rule, 413 for a body over the limit, all with the `{"error"}` body;
FastAPI's 422, which this server never answers (errors.py turns validation errors into 400s), goes.
Links say which operations take the id a create answers with, so a client (and schemathesis's
stateful phase) can carry it from create to read, update and delete through the `data` envelope.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from pydantic import BaseModel

from control_plane.api.deps import AUTH_ERRORS
from control_plane.api.responses import ErrorResponse
from control_plane.api.schemas import drop_null

BEARER_SCHEME = "bearerAuth"
WEBHOOK_SCHEME = "revenueCatWebhook"
SECURITY_SCHEMES: dict[str, Any] = {
    BEARER_SCHEME: {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "traxo_...",
        "description": "An API key: `Authorization: Bearer traxo_...`",
    },
    WEBHOOK_SCHEME: {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": "The webhook secret configured in RevenueCat and TRAXO_REVENUECAT_WEBHOOK_SECRET, "
        "sent verbatim",
    },
}

_DESCRIPTIONS = {
    400: "Invalid input: `error` names the field or parameter and the rule it broke",
    401: "Not authenticated",
    403: "Forbidden",
    404: "Not found, or another organization's",
    409: "Conflicts with what exists",
    413: "Request body over the server's limit",
    429: "Rate limit exceeded",
    501: "Not configured on this server",
    502: "An upstream service failed",
}
_INVALID_BODY = "The body is not a JSON object of the documented schema, or a field broke a rule"
_INVALID_QUERY = "A query parameter broke a rule"
_ERROR_REF = {"$ref": "#/components/schemas/ErrorResponse"}

_RATE_LIMIT_HEADERS = {
    "X-RateLimit-Limit": "Requests per minute: the organization's plan's (FREE's without an organization)",
    "X-RateLimit-Remaining": "Requests left in this minute",
    "X-RateLimit-Reset": "When the minute ends, in seconds since the epoch",
}
_RETRY_AFTER = {
    "description": "Seconds until the budget is renewed",
    "required": True,
    "schema": {"type": "integer", "minimum": 1},
}


_ID = "$response.body#/data/id"
_MONITOR_ID = {"monitor_id": _ID}
# By operationId: what each create's success answer names, and the operations that take it. A
# monitor's create reaches everything under /api/monitors/{monitor_id}; a page's, its slug's routes.
_CREATED: dict[str, tuple[dict[str, str], tuple[str, ...]]] = {
    "create_monitor": (
        _MONITOR_ID,
        (
            "get_monitor",
            "update_monitor",
            "delete_monitor",
            "pause_monitor",
            "resume_monitor",
            "list_checks",
            "list_monitor_incidents",
            "monitor_performance",
            "monitor_sla",
            "ai_usage",
            "ai_events",
            "list_insights",
            "put_cost_alert",  # a monitor has none until then
        ),
    ),
    "create_api_key": ({"key_id": _ID}, ("revoke_api_key",)),
    "invite_member": ({"member_id": _ID}, ("remove_member",)),
    "create_maintenance_window": (
        {"window_id": _ID},
        ("update_maintenance_window", "delete_maintenance_window"),
    ),
    "create_alert_channel": (
        {"channel_id": _ID},
        (
            "get_alert_channel",
            "update_alert_channel",
            "delete_alert_channel",
            "test_alert_channel",
            "list_alert_channel_deliveries",
        ),
    ),
    "create_status_page": (
        {"slug": "$response.body#/data/slug"},
        (
            "get_public_status_page",
            "update_status_page",
            "delete_status_page",
            "start_domain_verification",
            "check_domain_verification",
            "declare_page_incident",
            "list_page_incidents",
            "list_subscribers",
        ),
    ),
    "declare_page_incident": (
        {"slug": "$request.path.slug", "incident_id": _ID},
        ("get_page_incident", "edit_page_incident", "delete_page_incident", "post_page_incident_update"),
    ),
}
# An update is read back, and a deleted resource is asked for again (a 404 now), with the path's
# own parameters: by operationId, the operations an update's or a delete's success leads to.
_CHANGED: dict[str, tuple[str, ...]] = {
    "update_monitor": ("get_monitor",),
    "delete_monitor": ("get_monitor", "update_monitor"),
    "update_alert_channel": ("get_alert_channel",),
    "delete_alert_channel": ("get_alert_channel", "update_alert_channel"),
    "delete_maintenance_window": ("update_maintenance_window",),
    "update_status_page": ("get_public_status_page",),
    "delete_status_page": ("get_public_status_page", "update_status_page"),
    "edit_page_incident": ("get_page_incident",),
    "delete_page_incident": ("get_page_incident", "edit_page_incident"),
    "put_cost_alert": ("get_cost_alert",),
    "delete_cost_alert": ("get_cost_alert",),
}


def errors(*statuses: int | tuple[int, str]) -> dict[int | str, dict[str, Any]]:
    """A route's own error statuses for `responses=`, each with the `{"error"}` body: a status, or
    (status, when it happens)."""
    declared: dict[int | str, dict[str, Any]] = {}
    for entry in statuses:
        status, description = entry if isinstance(entry, tuple) else (entry, _DESCRIPTIONS[entry])
        declared[status] = {"model": ErrorResponse, "description": description}
    return declared


def json_body(model: type[BaseModel], description: str) -> dict[str, Any]:
    """`openapi_extra` documenting a JSON body that the route reads itself (after a check that must
    come first), with the model's schema inlined."""
    schema = model.model_json_schema()
    definitions = schema.pop("$defs", {})
    return {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {"application/json": {"schema": _inline(schema, definitions)}},
        }
    }


def _inline(node: Any, definitions: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        reference = node.get("$ref")
        if isinstance(reference, str) and reference.startswith("#/$defs/"):
            return _inline(definitions[reference.removeprefix("#/$defs/")], definitions)
        return {key: _inline(value, definitions) for key, value in node.items()}
    if isinstance(node, list):
        return [_inline(item, definitions) for item in node]
    return node


def build_openapi(app: FastAPI) -> dict[str, Any]:
    document = get_openapi(
        title=app.title,
        version=app.version,
        openapi_version=app.openapi_version,
        description=app.description,
        routes=app.routes,
    )
    for route in iter_route_contexts(app.routes):  # included routers' routes too, with their prefixes
        if isinstance(route.original_route, APIRoute) and route.include_in_schema:
            for method in route.methods or ():
                _complete(document["paths"][route.path_format][method.lower()], route)
    _link(document)
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    schemas["ErrorResponse"] = ErrorResponse.model_json_schema()
    components["securitySchemes"] = SECURITY_SCHEMES
    return document


def _complete(operation: dict[str, Any], route: RouteContext) -> None:
    """`route` stands for its APIRoute (dependant, body_field), as FastAPI's own document uses it."""
    responses: dict[str, Any] = operation["responses"]
    responses.pop("422", None)
    implied: dict[int, list[str]] = {}
    authenticated = False
    for call in _calls(route.dependant):
        for status, why in AUTH_ERRORS.get(call, {}).items():
            authenticated = True
            implied.setdefault(status, []).append(why)
    if route.body_field is not None:
        implied.setdefault(400, []).append(_INVALID_BODY)
        implied.setdefault(413, []).append(_DESCRIPTIONS[413])
    if route.dependant.query_params:
        implied.setdefault(400, []).append(_INVALID_QUERY)
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "query":
                drop_null(parameter["schema"])  # absent or a string: a query has no null
    for status, reasons in sorted(implied.items()):
        _add_error(responses, status, reasons)
    if authenticated:
        operation["security"] = [{BEARER_SCHEME: []}]
        for code, response in responses.items():
            if code.startswith("2"):
                response.setdefault("headers", {}).update(
                    {
                        name: {"description": description, "required": True, "schema": {"type": "integer"}}
                        for name, description in _RATE_LIMIT_HEADERS.items()
                    }
                )
    if "429" in responses:
        responses["429"].setdefault("headers", {})["Retry-After"] = _RETRY_AFTER


def _add_error(responses: dict[str, Any], status: int, reasons: list[str]) -> None:
    """Add what a dependency or the error handlers may answer to what the route declared."""
    declared = responses.get(str(status))
    if declared is None:
        responses[str(status)] = {
            "description": "; or ".join(dict.fromkeys(reasons)),
            "content": {"application/json": {"schema": _ERROR_REF}},
        }
        return
    described = declared.get("description", "")
    extra = [reason for reason in dict.fromkeys(reasons) if reason not in described]
    declared["description"] = "; or ".join([described, *extra]) if described else "; or ".join(extra)


def _calls(dependant: Dependant) -> Iterator[Any]:
    for dependency in dependant.dependencies:
        yield dependency.call
        yield from _calls(dependency)


def _link(document: dict[str, Any]) -> None:
    """Add _CREATED's and _CHANGED's links to their operations' success answers."""
    operations = {
        operation["operationId"]: (path, operation)
        for path, item in document["paths"].items()
        for operation in item.values()
    }

    def path_parameters(operation_id: str) -> list[str]:
        _, operation = operations[operation_id]
        return [p["name"] for p in operation.get("parameters", []) if p["in"] == "path"]

    sources = dict(_CREATED)
    for name, targets in _CHANGED.items():
        sources[name] = ({p: f"$request.path.{p}" for p in path_parameters(name)}, targets)
    for name, (parameters, targets) in sources.items():
        _, operation = operations[name]
        success = next(code for code in operation["responses"] if code.startswith("2"))
        links = operation["responses"][success].setdefault("links", {})
        for target in targets:
            # Every path parameter of the target is named (a KeyError here is a wrong table above).
            links[target] = {
                "operationId": target,
                "parameters": {p: parameters[p] for p in path_parameters(target)},
            }

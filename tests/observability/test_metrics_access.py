"""Who may read /metrics: with TRAXO_METRICS_TOKEN set, only a scrape bearing it; unset, only
loopback clients. The rest are told what to send or set, as JSON."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from control_plane.observability.exposition import is_loopback, refusal
from control_plane.settings import Settings
from tests.observability.support import app_with, client_of

TOKEN = "metrics-token-0123456789abcdef"
REMOTE = ("10.20.30.40", 51000)


@pytest.fixture(scope="module")
def with_token(runtime):
    return app_with(runtime, metrics_token=TOKEN)


@pytest.fixture(scope="module")
def without_token(runtime):
    return app_with(runtime, metrics_token=None)


async def test_it_answers_a_scrape_with_the_token_from_anywhere(with_token):
    async with client_of(with_token, REMOTE) as http:
        response = await http.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert "traxo_database_up 1.0" in response.text
    assert "# TYPE traxo_http_requests_total counter" in response.text


@pytest.mark.parametrize(
    "authorization",
    [None, f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", "Bearer ", f"Basic {TOKEN}", TOKEN, "Bearer traxo_x"],
)
async def test_it_refuses_a_missing_or_wrong_token_even_from_loopback(with_token, authorization):
    headers = {"Authorization": authorization} if authorization is not None else {}
    async with client_of(with_token) as http:
        response = await http.get("/metrics", headers=headers)
    assert response.status_code == 401
    assert response.json() == {
        "error": "Missing or wrong metrics token: send 'Authorization: Bearer <TRAXO_METRICS_TOKEN>'"
    }
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "traxo_" not in response.text.replace("TRAXO_METRICS_TOKEN", "")


@pytest.mark.parametrize("client", [("127.0.0.1", 40000), ("127.8.9.10", 40000), ("::1", 40000)])
async def test_without_a_token_it_answers_loopback_clients(without_token, client):
    async with client_of(without_token, client) as http:
        response = await http.get("/metrics")
    assert response.status_code == 200
    assert "traxo_monitor_series_dropped" in response.text


@pytest.mark.parametrize("client", [REMOTE, ("192.168.1.5", 40000), ("2001:db8::1", 40000)])
async def test_without_a_token_it_refuses_other_clients_saying_what_to_set(without_token, client):
    async with client_of(without_token, client) as http:
        response = await http.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 403
    error = response.json()["error"]
    assert "loopback clients only" in error and "set it" in error and "TRAXO_METRICS_TOKEN" in error


@pytest.mark.parametrize(
    "header",
    [("X-Forwarded-For", "203.0.113.7"), ("Forwarded", "for=203.0.113.7"), ("X-Real-IP", "203.0.113.7")],
)
async def test_without_a_token_a_proxied_request_is_not_a_loopback_client(without_token, header):
    # A reverse proxy or a mesh sidecar on the same host (Istio's connects from 127.0.0.6) makes
    # every client look like loopback; its forwarding header says the request came from elsewhere.
    async with client_of(without_token, ("127.0.0.6", 40000)) as http:
        response = await http.get("/metrics", headers=[header])
    assert response.status_code == 403
    assert "TRAXO_METRICS_TOKEN" in response.json()["error"]


async def test_wrong_tokens_spend_the_address_budget_for_failed_authentications(with_token):
    async with client_of(with_token, ("10.99.0.1", 50000)) as http:  # an address of its own
        statuses = [
            (await http.get("/metrics", headers={"Authorization": "Bearer guess"})).status_code
            for _ in range(61)
        ]
    assert statuses[:60] == [401] * 60 and statuses[60] == 429


def test_the_rule_itself():
    assert refusal(TOKEN, f"bearer  {TOKEN} ", "10.0.0.1") is None  # scheme case, spaces
    assert refusal(TOKEN, f"Bearer {TOKEN}", None) is None
    assert refusal(TOKEN, None, "127.0.0.1") is not None  # a token set binds loopback too
    assert refusal(None, None, "::ffff:127.0.0.1") is None  # loopback as a dual-stack socket sees it
    assert refusal(None, None, "127.0.0.1", forwarded=True) is not None
    assert refusal(TOKEN, f"Bearer {TOKEN}", "127.0.0.1", forwarded=True) is None  # a token is enough
    assert (refusal(None, None, "testclient") or refusal(None, None, None)) is not None
    assert not is_loopback("::ffff:10.0.0.1") and not is_loopback("") and is_loopback("127.255.0.1")


async def test_metrics_is_not_in_the_openapi_document(api):
    document = (await api.get("/api/openapi.json")).json()
    assert not any(path in document["paths"] for path in ("/metrics", "/readyz", "/healthz"))


def test_the_settings_name_what_is_wrong(monkeypatch):
    monkeypatch.setenv("TRAXO_METRICS_TOKEN", "  ")
    assert Settings().metrics_token is None  # an empty value is no token, not a token of ""
    with pytest.raises(ValidationError, match="metrics_monitor_limit"):
        Settings(metrics_monitor_limit=-1)

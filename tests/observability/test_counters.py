"""The counters are counted where things happen: HTTP answers by route template (the fast paths'
too), check results stored, AI events committed, alert sends, the workers' rounds."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from control_plane.alerts.worker import deliver_due
from control_plane.api.app import create_app
from control_plane.core.timefmt import utcnow
from control_plane.observability.metrics import JobMetrics
from control_plane.workers.runner import PeriodicJob, WorkerRunner
from tests.ai.support import insert_llm_monitor
from tests.alert_delivery_support import dispatch, insert_channel, open_down
from tests.alert_receivers import http_recorder
from tests.factories import insert_monitor, record, result
from tests.observability.support import sample
from tests.waiting import eventually

REQUESTS = "traxo_http_requests_total"
PREFLIGHT = {"Access-Control-Request-Method": "POST"}


def answered(route: str, method: str, status: int) -> float:
    return sample(REQUESTS, route=route, method=method, status=str(status))


async def test_http_answers_are_counted_by_route_template_never_the_raw_path(api, world):
    cases = [
        # routed by FastAPI
        ("GET", "/api/monitors/mon_nothere", "/api/monitors/{monitor_id}", 404, world.alice.headers),
        ("GET", "/api/monitors/mon_other", "/api/monitors/{monitor_id}", 401, {}),
        # answered before routing: the AI ingest's fast path, a CORS preflight, a 405 of a fixed path
        ("POST", "/api/ai/ingest/mon_nothere", "/api/ai/ingest/{monitorId}", 404, {}),
        ("OPTIONS", "/api/ai/ingest/mon_x", "/api/ai/ingest/{monitorId}", 204, PREFLIGHT),
        ("PUT", "/api/team/invite", "/api/team/invite", 405, world.alice.headers),
        # no route at all, and a method nobody answers
        ("GET", "/no/such/path/123", "unmatched", 404, {}),
    ]  # fmt: skip
    before = [answered(route, method, status) for method, _, route, status, _ in cases]
    durations_before = sample(
        "traxo_http_request_duration_seconds_count", route="/api/monitors/{monitor_id}", method="GET"
    )
    for method, path, _, status, headers in cases:
        body = {
            "provider": "openai",
            "model": "gpt-4o",
            "promptTokens": 1,
            "completionTokens": 1,
            "latencyMs": 5,
        }
        response = await api.request(method, path, headers=headers, json=body if method == "POST" else None)
        assert response.status_code == status, (method, path, response.text)
    for (method, _, route, status, _), count in zip(cases, before, strict=True):
        assert answered(route, method, status) == count + 1, (method, route, status)
    assert (
        sample("traxo_http_request_duration_seconds_count", route="/api/monitors/{monitor_id}", method="GET")
        == durations_before + 2
    )
    brewed = answered("/api/monitors", "other", 405)
    assert (await api.request("BREW", "/api/monitors")).status_code == 405
    assert answered("/api/monitors", "other", 405) == brewed + 1
    assert answered("/api/monitors", "BREW", 405) == 0


async def test_stored_check_results_are_counted_once_and_replays_as_duplicates(database, world):
    monitor = await insert_monitor(database, world.org_a)
    committed, duplicate = (
        sample("traxo_check_results_total", outcome="committed"),
        sample("traxo_check_results_total", outcome="duplicate"),
    )
    batch = [result(monitor.id, utcnow()), result(monitor.id, utcnow())]
    await record(database, batch)
    await record(database, batch)  # an agent's replay
    assert sample("traxo_check_results_total", outcome="committed") == committed + 2
    assert sample("traxo_check_results_total", outcome="duplicate") == duplicate + 2


async def test_ai_events_are_counted_once_committed(api, database, world):
    monitor = await insert_llm_monitor(database, world.org_a)
    before = sample("traxo_ai_events_ingested_total")
    event = {
        "provider": "openai",
        "model": "gpt-4o",
        "promptTokens": 1,
        "completionTokens": 1,
        "latencyMs": 5,
    }
    response = await api.post(f"/api/ai/ingest/{monitor.id}", json={"events": [event, event, event]})
    assert response.status_code == 200, response.text
    assert sample("traxo_ai_events_ingested_total") == before + 3


async def test_alert_sends_are_counted_by_channel_type_and_outcome(database, world, settings):
    alert_settings = settings.model_copy(
        update={"alerts_allow_private_urls": True, "alert_send_timeout_seconds": 2}
    )
    now = utcnow()
    failed = sample("traxo_alert_delivery_attempts_total", channel_type="WEBHOOK", outcome="failed")
    given_up = sample("traxo_alert_deliveries_given_up_total", channel_type="WEBHOOK")
    async with http_recorder(status=410, reply="no such hook") as receiver:
        await insert_channel(database, world.org_a, config={"url": f"{receiver.url}/hook"}, created_at=now)
        await open_down(database, await insert_monitor(database, world.org_a), now)
        await dispatch(database, now)
        assert await deliver_due(database, alert_settings, now=now) == 1
    assert (
        sample("traxo_alert_delivery_attempts_total", channel_type="WEBHOOK", outcome="failed") == failed + 1
    )
    assert sample("traxo_alert_deliveries_given_up_total", channel_type="WEBHOOK") == given_up + 1


async def test_the_workers_rounds_are_counted_by_job_and_outcome(database):
    rounds = 0

    async def flaky() -> None:
        nonlocal rounds
        rounds += 1
        if rounds == 2:
            raise RuntimeError("second round fails")

    runner = WorkerRunner(database, [PeriodicJob("metrics-test-job-w_abc123", 0.01, flaky)])
    job = {"job": "metrics-test-job"}  # the per-process suffix left out
    ok, failed = (
        sample("traxo_worker_job_runs_total", **job, outcome="ok"),
        sample("traxo_worker_job_runs_total", **job, outcome="failed"),
    )
    started = utcnow().timestamp()
    await runner.start()
    try:
        await eventually(
            lambda: sample("traxo_worker_job_runs_total", **job, outcome="ok") >= ok + 2, 5, "two good rounds"
        )
    finally:
        await runner.stop()
    assert sample("traxo_worker_job_runs_total", **job, outcome="failed") == failed + 1
    assert sample("traxo_worker_job_last_success_timestamp_seconds", **job) >= started
    assert sample("traxo_worker_job_last_run_timestamp_seconds", **job) >= started
    assert sample("traxo_worker_job_duration_seconds_count", **job) >= 3
    assert sample("traxo_worker_job_running_seconds", **job) == 0.0  # stopped between rounds


def test_a_job_lag_is_how_late_its_round_started_and_a_long_round_shows_as_running():
    now = [1000.0]
    registry = CollectorRegistry()
    jobs = JobMetrics(registry, wall=lambda: 1_700_000_000 + now[0], monotonic=lambda: now[0])

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, {"job": "sweep", **labels})

    with jobs.round("sweep", 5) as first:
        now[0] += 2  # a round of 2 s
        first.ran = True
    assert value("traxo_worker_job_lag_seconds") is None  # a first round is due when it starts
    assert value("traxo_worker_job_last_success_timestamp_seconds") == 1_700_001_002
    now[0] += 8  # its next round was due 5 s after the first ended: 3 s late
    with jobs.round("sweep", 5):  # not run here: skipped
        assert value("traxo_worker_job_lag_seconds") == 3
        now[0] += 30
        assert value("traxo_worker_job_running_seconds") == 30
    assert value("traxo_worker_job_runs_total", outcome="skipped") == 1  # another replica held it
    with pytest.raises(RuntimeError), jobs.round("sweep", 5):
        raise RuntimeError("boom")
    assert value("traxo_worker_job_runs_total", outcome="failed") == 1
    assert value("traxo_worker_job_last_success_timestamp_seconds") == 1_700_001_002
    assert value("traxo_worker_job_last_run_timestamp_seconds") == 1_700_001_040
    assert value("traxo_worker_job_running_seconds") == 0


async def test_a_client_that_leaves_before_its_answer_is_no_5xx(settings, runtime):
    # The AI ingest's fast path returns without answering when the client leaves mid-body: that
    # was counted as a 500, and every flaky client raised the error ratio operators alert on.
    app = create_app(settings, runtime)
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/ai/ingest/mon_leaving",
        "raw_path": b"/api/ai/ingest/mon_leaving",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"traxo.test"), (b"content-length", b"100")],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
    }
    messages = [
        {"type": "http.request", "body": b'{"provider"', "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[dict] = []

    async def receive():
        return messages.pop(0)

    async def send(message):
        sent.append(message)

    route = "/api/ai/ingest/{monitorId}"
    server_errors, left = answered(route, "POST", 500), answered(route, "POST", 0)
    await app(scope, receive, send)
    assert sent == []  # nothing was answered
    assert answered(route, "POST", 500) == server_errors
    assert answered(route, "POST", 0) == left + 1

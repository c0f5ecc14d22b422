"""The parts the agents' endpoint is wired from, each on its own with a clock the test moves."""

from __future__ import annotations

import ast
from datetime import UTC, datetime, timedelta
from pathlib import Path

from control_plane.agents.assignment_reads import MonitorAssignment
from control_plane.agents.change_log import ChangeLog
from control_plane.agents.fences import Fences
from control_plane.agents.mailboxes import ALL, Mailboxes
from control_plane.agents.registry import Registration
from control_plane.db import Database
from control_plane.settings import Settings
from tests.agents_server.server_tools import REGION, create_token, revoke_token

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
AGENTS_PACKAGE = Path(__file__).resolve().parents[2] / "control_plane" / "agents"
# The gRPC edge: the servicer, the one conversion module, and the wiring that starts the server.
EDGE = {"server.py", "convert.py", "endpoint.py"}


class MovedClock:
    def __init__(self) -> None:
        self.now = START
        self.seconds = 1000.0

    def wall(self) -> datetime:
        return self.now

    def monotonic(self) -> float:
        return self.seconds


def registration(agent_id: str = "agt_1", incarnation: int = 1, token_id: str = "tok_1") -> Registration:
    return Registration(agent_id, f"{token_id}/box", REGION, token_id, None, incarnation)


def assignment(monitor_id: str) -> MonitorAssignment:
    return MonitorAssignment(monitor_id, "HTTP", "https://x.example/", 60, 10, "GET", None, None, {}, 1)


def test_versions_keep_increasing_while_the_clock_stands_still_and_follow_it_when_it_moves() -> None:
    clock = MovedClock()
    log = ChangeLog(clock)

    first, second = log.next_version(), log.next_version()
    clock.now += timedelta(seconds=1)
    third = log.next_version()

    assert first == int(START.timestamp()) * 1_000_000
    assert second == first + 1
    assert third == first + 1_000_000


def test_a_member_resumes_only_from_the_version_its_last_stream_ended_at() -> None:
    log = ChangeLog(MovedClock(), members_kept=2)
    sent = {"mon_a": assignment("mon_a")}
    log.remember("tok/one", 7, sent)

    resumed = log.resume("tok/one", 7)

    assert resumed == sent and resumed is not sent  # a copy: the new stream changes it
    assert log.resume("tok/one", 6) is None
    assert log.resume("tok/one", 0) is None  # an agent that holds nothing gets a snapshot
    log.remember("tok/two", 8, {})
    log.remember("tok/three", 9, {})
    assert log.resume("tok/one", 7) is None  # the oldest is forgotten beyond members_kept


def test_events_reach_the_streams_they_concern() -> None:
    mailboxes = Mailboxes()
    here = mailboxes.open(registration("agt_1"))
    elsewhere = mailboxes.open(Registration("agt_2", "tok_2/box", "eu-west-1", "tok_2", None, 1))

    mailboxes.on_assignments_changed(f"{REGION}:mon_a")
    mailboxes.on_assignments_changed(REGION)

    assert here.take() == {"mon_a", ALL} and elsewhere.take() == set()
    mailboxes.post_all("mon_b")
    assert here.take() == {"mon_b"} and elsewhere.take() == {"mon_b"}
    mailboxes.close(here)
    mailboxes.on_reset()
    assert here.take() == set() and elsewhere.take() == {ALL}


async def test_a_newer_registration_ends_only_older_streams_of_its_agent(database: Database) -> None:
    mailboxes = Mailboxes()
    fences = Fences(database, MovedClock(), mailboxes)
    older = mailboxes.open(registration("agt_1", incarnation=1))
    other_agent = mailboxes.open(registration("agt_2", incarnation=1))

    fences.on_agent_registered("agt_1:2")

    assert older.superseded and older.wake.is_set()
    assert not other_agent.superseded
    assert fences.superseded(registration("agt_1", incarnation=1))
    assert not fences.superseded(registration("agt_1", incarnation=2))
    fences.on_agent_registered("agt_1:1")  # heard late: changes nothing
    assert not fences.superseded(registration("agt_1", incarnation=2))


async def test_a_token_revoked_unheard_of_is_found_once_the_recheck_interval_passed(
    database: Database, settings: Settings
) -> None:
    token_id, _ = await create_token(database, settings)
    clock = MovedClock()
    fences = Fences(database, clock, Mailboxes(), recheck_seconds=5.0)  # not subscribed: hears nothing
    watch = fences.watch_token(token_id)
    await revoke_token(database, token_id)

    assert not await watch.revoked()
    clock.seconds += 5.0
    assert not await watch.revoked()  # not yet past the interval
    clock.seconds += 0.1
    assert await watch.revoked()
    assert fences.is_revoked(token_id)


async def test_a_revocation_heard_of_ends_streams_of_the_token_at_once(database: Database) -> None:
    mailboxes = Mailboxes()
    fences = Fences(database, MovedClock(), mailboxes)
    stream = mailboxes.open(registration(token_id="tok_gone"))
    watch = fences.watch_token("tok_gone")

    fences.on_token_revoked("tok_gone")

    assert stream.revoked and stream.wake.is_set()
    assert await watch.revoked()


def test_only_the_grpc_edge_touches_protobuf_or_grpc() -> None:
    banned = (
        "traxo_protocol.traxo",
        "google.protobuf",
        "grpc",
        "control_plane.agents.convert",
        "control_plane.agents.server",
    )
    offenders: dict[str, list[str]] = {}
    for module in sorted(AGENTS_PACKAGE.glob("*.py")):
        if module.name in EDGE:
            continue
        imported: list[str] = []
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.Import):
                imported += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.append(node.module)
        bad = [name for name in imported if any(name == b or name.startswith(f"{b}.") for b in banned)]
        if bad:
            offenders[module.name] = bad
    assert offenders == {}

"""Item 6: API keys, agent tokens and subscription confirmation tokens are stored only as hashes:
after each is made, no column of any table holds its plaintext (nor the part of it that is not the
prefix and last four kept for display). Tokens that must be kept in clear to be handed out again
(heartbeat tokens in heartbeatUrl, unsubscribe links, domain verification records) and every id
that routes unauthenticated traffic carry at least 128 random bits from `secrets`."""

from __future__ import annotations

import ast
import inspect
import math
from collections.abc import Callable
from typing import Any

import httpx
from sqlalchemy import select

from control_plane.agents import tokens
from control_plane.core import ids
from control_plane.core.timefmt import utcnow
from control_plane.db import Base, Database
from control_plane.services import monitors
from control_plane.status_pages import domains, public, subscribers
from tests.conftest import World
from tests.status_pages.support import create_page

_BITS_PER_CHARACTER = {"token_urlsafe": 8, "token_hex": 8, "token_bytes": 8}  # per byte asked for


async def _every_stored_value(database: Database) -> list[tuple[str, str, str]]:
    """(table, column, the value as text) of every non-null cell of every table."""
    cells = []
    async with database.engine.connect() as connection:
        for table in Base.metadata.sorted_tables:
            for row in (await connection.execute(select(table))).mappings():
                cells += [
                    (table.name, column, repr(value)) for column, value in row.items() if value is not None
                ]
    return cells


async def test_keys_agent_tokens_and_confirmation_tokens_are_stored_only_hashed(
    api: httpx.AsyncClient, world: World, database: Database
) -> None:
    made = await api.post("/api/api-keys", json={"name": "CI"}, headers=world.alice.headers)
    assert made.status_code == 201, made.text
    api_key = made.json()["data"]["key"]
    async with database.session() as session:
        _, agent_token = await tokens.create_token(session, region="us-east-1", now=utcnow())
    await create_page(api, world.alice, slug="public-page")
    async with database.session() as session:
        page = await public.page_by_slug(session, "public-page")
        assert page is not None
        confirmation = await subscribers.subscribe(session, page, "reader@example.com", [], utcnow())
    assert confirmation is not None
    secrets_made = {
        "a new API key": api_key,
        "a user's first API key": world.alice.key,
        "an agent token": agent_token,
        "a confirmation token": confirmation.confirm_token,
    }
    cells = await _every_stored_value(database)
    assert len(cells) > 50  # the scan reads what is there
    for what, secret in secrets_made.items():
        middle = secret[8:-4]  # neither the prefix nor the last four a listing shows
        assert len(middle) >= 20
        found = [(table, column) for table, column, value in cells if secret in value or middle in value]
        assert not found, f"{what} in {found}"
        digest = ids.hash_secret(secret)
        assert any(digest in value for _, _, value in cells), f"{what}: its hash is what is kept"


def _random_bits(function: Callable[..., Any]) -> int:
    """The random bits `function` draws from secrets.token_*(n) (a constant n), found in its source."""
    tree = ast.parse(inspect.getsource(function).strip())
    bits = 0
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "secrets"
            and node.func.attr in _BITS_PER_CHARACTER
        ):
            (argument,) = node.args
            assert isinstance(argument, ast.Constant), ast.unparse(node)
            bits += _BITS_PER_CHARACTER[node.func.attr] * int(argument.value)
    return bits


def test_every_token_and_id_that_routes_public_traffic_has_128_random_bits() -> None:
    makers: dict[str, Callable[..., Any]] = {
        "API keys": ids.new_api_key,
        "ids (monitor ids route the AI ingest and badges)": ids.new_id,
        "heartbeat tokens": monitors.new_heartbeat_token,
        "subscription confirm and unsubscribe tokens": subscribers._token,
        "agent tokens": tokens.create_token,
        "domain verification tokens": domains.start_verification,
    }
    for what, maker in makers.items():
        assert _random_bits(maker) >= 128, what
    # And made so: different every time, long enough to carry them.
    for make, prefix in (
        (ids.new_api_key, "traxo_"),
        (monitors.new_heartbeat_token, "hb_"),
        (subscribers._token, ""),
    ):
        made = {make() for _ in range(200)}
        assert len(made) == 200 and all(token.startswith(prefix) for token in made)
        shortest = min(len(token) - len(prefix) for token in made)
        assert shortest * math.log2(64) >= 128, make
    assert len({ids.new_id("mon") for _ in range(200)}) == 200

"""The change feed: publishing inside a transaction, delivery after its commit, nothing after a rollback."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from control_plane.core import changes
from control_plane.core.ids import new_id
from control_plane.core.timefmt import utcnow
from control_plane.models import Membership, Role

TOPIC = "test-topic"


async def test_publishing_leaves_pending_rows_to_the_callers_flush(database, world):
    """A row that breaks a unique constraint fails where the service flushes or commits (inside its
    IntegrityError handler), not in publish(): on PostgreSQL the NOTIFY used to autoflush it."""
    heard: list[str] = []
    database.changes.subscribe(TOPIC, heard.append)
    try:
        async with database.session() as session:
            duplicate = Membership(
                id=new_id("mem"),
                org_id=world.org_b,
                user_id=world.alice.user_id,
                role=Role.ADMIN,
                joined_at=utcnow(),
            )
            session.add(duplicate)
            await changes.publish(session, TOPIC, "payload")
            assert duplicate in session.new  # still pending: publish wrote nothing
            with pytest.raises(IntegrityError):
                await session.commit()
            await session.rollback()
        assert heard == []  # rolled back: never delivered
        async with database.session() as session:
            memberships = await session.scalar(
                select(func.count()).select_from(Membership).where(Membership.user_id == world.alice.user_id)
            )
        assert memberships == 1
    finally:
        database.changes.unsubscribe(TOPIC, heard.append)


async def test_a_change_is_delivered_after_its_commit(database):
    heard: list[str] = []
    database.changes.subscribe(TOPIC, heard.append)
    try:
        async with database.session() as session:
            await changes.publish(session, TOPIC, "first")
            assert heard == []
            await session.commit()
        assert heard[:1] == ["first"]  # at once in this process (again through LISTEN on PostgreSQL)
    finally:
        database.changes.unsubscribe(TOPIC, heard.append)
    async with database.session() as session:
        await changes.publish(session, TOPIC, "unheard")
        await session.commit()
    assert "unheard" not in heard

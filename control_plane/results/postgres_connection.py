"""The psycopg connection under a session, as PostgreSQL's results store uses it: its temp tables
(what a batch or a fold is COPY'd into) and the advisory lock keys of the results path."""

from __future__ import annotations

from typing import Any

import orjson
from psycopg.types.json import set_json_loads
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from control_plane.db import psycopg_connection

# Advisory lock keys. Result writers hold RESULT_WRITERS_LOCK shared; a monitor's deletion holds it
# exclusively (PostgresResultsStore.exclude_writers).
RESULT_WRITERS_LOCK = 0x7472_786F_7277  # "trxorw"
LAST_CHECKS_LOCK = 0x7472_786F_6C63  # pg_advisory_xact_lock key of update_last_checks ("trxolc")

_TEMP_TABLES = "traxo.results_temp_tables"  # in session.info: created in this session's transaction
_JSON_LOADS = "traxo.orjson_loads"  # in connection.info: set once per connection
_CREATE_TEMP_TABLES = """
CREATE TEMP TABLE IF NOT EXISTS traxo_in_results
    (LIKE check_results INCLUDING DEFAULTS) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS traxo_in_rollups
    (LIKE check_rollups INCLUDING DEFAULTS) ON COMMIT DELETE ROWS;
"""


@event.listens_for(Session, "after_rollback")
def _forget_temp_tables(session: Session, *_: Any) -> None:
    # A rollback may have taken the tables with it (if its transaction created them): whatever
    # rolls a session back, its next use creates them again.
    session.info.pop(_TEMP_TABLES, None)


async def driver_connection(session: AsyncSession) -> Any:
    """The session's psycopg connection (in the session's transaction), with our temp tables.

    The tables are created (IF NOT EXISTS) once per session, i.e. in every batch's transaction:
    creating them once per connection would not survive that first transaction rolling back.
    """
    connection = await session.connection()
    driver = await psycopg_connection(session)
    if not connection.info.get(_JSON_LOADS):
        set_json_loads(orjson.loads, driver)  # rollups come back as JSON; orjson reads them fastest
        connection.info[_JSON_LOADS] = True
    if not session.info.get(_TEMP_TABLES):
        await driver.execute(_CREATE_TEMP_TABLES)
        session.info[_TEMP_TABLES] = True
    return driver

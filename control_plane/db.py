"""Database engine, session factory and the column types shared by every model."""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import time
import traceback
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import psycopg
from sqlalchemy import DateTime, MetaData, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import TypeDecorator

from control_plane.core.changes import ChangeFeed

log = logging.getLogger(__name__)

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC in Python, whatever the database keeps."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        # SQLite has no time zones: keep naive UTC there so text ordering stays correct.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value if value.tzinfo is UTC else value.astimezone(UTC)


class _SQLiteConnection(sqlite3.Connection):
    """A SQLite connection whose close ends its transaction first.

    sqlite3 closes with sqlite3_close_v2: while a statement of the connection is not finalized
    (a cursor still referenced, here by the traceback of a task cancelled mid-executemany, which
    SQLAlchemy then terminates), the connection only becomes a zombie, and a zombie keeps its open
    write transaction, with the WAL write lock, until that statement goes. The lock is the file's:
    every writer of every process then waits out busy_timeout on 'database is locked', for as long
    as the reference lives (forever, seen in a run). A rollback first releases the lock whatever
    still refers to the statements; they are aborted and merely wait to be finalized."""

    def close(self) -> None:
        try:
            self.rollback()
        except sqlite3.Error:
            pass  # closed already, or the rollback failed: closing is all that is left
        super().close()


class utc_day(FunctionElement[datetime]):
    """SQL: the start of the UTC day of a UTCDateTime column, as a UTCDateTime (to group rows by
    day in the database instead of row by row in Python)."""

    type = UTCDateTime()
    inherit_cache = True


@compiles(utc_day, "postgresql")
def _utc_day_postgresql(element: utc_day, compiler: Any, **kw: Any) -> str:
    return f"date_trunc('day', {compiler.process(element.clauses, **kw)}, 'UTC')"


@compiles(utc_day, "sqlite")
def _utc_day_sqlite(element: utc_day, compiler: Any, **kw: Any) -> str:
    # Naive UTC text there (UTCDateTime): 'YYYY-MM-DD 00:00:00.000000', as the column keeps it.
    return f"strftime('%Y-%m-%d 00:00:00.000000', {compiler.process(element.clauses, **kw)})"


def create_engine(database_url: str, **kwargs: Any) -> AsyncEngine:
    # A failed statement's error (and SQLAlchemy's log) lists its bound values otherwise: monitor
    # ids, heartbeat tokens, API key hashes, and tens of thousands of them for a long IN list.
    kwargs.setdefault("hide_parameters", True)
    if database_url.startswith("sqlite"):
        kwargs["connect_args"] = {"factory": _SQLiteConnection, **kwargs.get("connect_args", {})}
        engine = create_async_engine(database_url, **kwargs)

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=10000")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    kwargs.setdefault("pool_size", 20)
    kwargs.setdefault("max_overflow", 20)
    # No ping at each checkout: it would be a round trip more for every request, to find what the
    # first statement finds anyway. A connection the server dropped (a restart, a failover) fails
    # that statement as a disconnect, and SQLAlchemy then invalidates the whole pool: every older
    # connection is replaced at its next checkout. An outage costs the requests in flight during it
    # a 503 (api/unavailable.py), and one between requests the first request after it; the rest
    # find new connections.
    kwargs.setdefault("pool_pre_ping", False)
    kwargs.setdefault("pool_use_lifo", True)  # reuse warm connections; idle extras can time out
    engine = create_async_engine(database_url, **kwargs)

    @event.listens_for(engine.sync_engine, "connect")
    def _utc_session(dbapi_connection: Any, _record: Any) -> None:
        # Sessions in UTC whatever the server's default: SQL date arithmetic agrees with Python's,
        # and psycopg returns timestamps with datetime.timezone.utc, which UTCDateTime then passes
        # through as they are (converting from a ZoneInfo cost ~1 µs a value: 2 ms per 1,000 monitors).
        autocommit = dbapi_connection.autocommit
        dbapi_connection.autocommit = True  # a SET in a transaction would go with its rollback
        cursor = dbapi_connection.cursor()
        cursor.execute("SET TIME ZONE 'UTC'")
        cursor.close()
        dbapi_connection.autocommit = autocommit

    return engine


def insert_ignoring_conflicts(session: AsyncSession, table: Any, *index_elements: Any) -> Any:
    """`INSERT … ON CONFLICT (index_elements) DO NOTHING` in the session's database's dialect
    (both spell it the same; SQLAlchemy builds it per dialect). No elements: any conflict."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    return dialect.insert(table).on_conflict_do_nothing(index_elements=list(index_elements) or None)


# COPY and fetchmany loops return to the event loop every so many rows: a statement of 50,000 rows
# would otherwise hold it (and every agent's call and request) for seconds.
ROWS_BETWEEN_YIELDS = 2_000


async def psycopg_connection(session: AsyncSession) -> Any:
    """The session's psycopg connection, in the session's transaction (PostgreSQL only): for COPY,
    and for statements SQLAlchemy's layers would only slow down."""
    connection = await session.connection()
    return (await connection.get_raw_connection()).driver_connection


async def copy_rows(cursor: Any, copy_sql: str, rows: Iterable[Sequence[Any]]) -> None:
    """`COPY … FROM STDIN` of `rows` through a psycopg cursor, returning to the loop every
    ROWS_BETWEEN_YIELDS rows."""
    async with cursor.copy(copy_sql) as copy:
        for index, row in enumerate(rows, 1):
            await copy.write_row(row)
            if index % ROWS_BETWEEN_YIELDS == 0:
                await asyncio.sleep(0)


def brief_error(exc: BaseException, limit: int = 300) -> str:
    """An exception as one bounded line for a log that may repeat it every pass of a retry loop:
    its type, the start of its message and where in Traxo it was raised. For a failed statement the
    database's own message, without the SQL (SQLAlchemy's str() carries all of it, megabytes for a
    long IN list)."""
    error: BaseException = exc
    if isinstance(exc, StatementError) and exc.orig is not None:
        error = exc.orig
    # psycopg's str() adds the server's DETAIL and CONTEXT lines, which quote the rows: a COPY's
    # failing line, a key that already exists. The primary message says what went wrong without
    # the data.
    diagnostic = getattr(error, "diag", None)
    primary = getattr(diagnostic, "message_primary", None)
    message = " ".join((primary if isinstance(primary, str) and primary else str(error)).split())
    if len(message) > limit:
        message = message[:limit] + "…"
    ours = f"{os.sep}control_plane{os.sep}"
    # The innermost frame of ours, past this module's own helpers (copy_rows): their caller is
    # where to look.
    where = next(
        (
            f" (at control_plane/{frame.filename.rsplit(ours, 1)[1]}:{frame.lineno})"
            for frame in reversed(traceback.extract_tb(exc.__traceback__))
            if ours in frame.filename and frame.filename != __file__
        ),
        "",
    )
    return f"{type(error).__name__}: {message}{where}"


# PostgreSQL's SQLSTATEs of a server that is going away or not yet taking connections (57P01
# admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now), that has no connection to spare
# (53300 too_many_connections: several replicas' pools under load), or that takes no writes (25006
# read_only_sql_transaction: a standby, during a failover); class 08 is connection exceptions.
_UNAVAILABLE_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "53300", "25006"})


def database_unavailable(exc: BaseException) -> bool:
    """Whether `exc` says the database cannot take work right now (down, restarting, failing over,
    the pool's connections all busy past its timeout, SQLite's file locked past busy_timeout), as
    opposed to a statement's own error (a constraint, a deadlock: a lock-order bug worth its
    traceback). The first is the same request's to retry later: a 503, a warning without a traceback.

    Only the driver's errors count, through SQLAlchemy or raised by psycopg itself (the results and
    AI ingest stores use its connection directly): a bare OSError or TimeoutError may be anything's
    (a file, an outbound call), and psycopg wraps its own socket errors in OperationalError.
    """
    if database_busy(exc):
        return True
    error: BaseException | None
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:  # SQLAlchemy saw a disconnect and invalidated the pool
            return True
        error = exc.orig
    else:
        error = exc
    if isinstance(error, psycopg.Error):
        if error.sqlstate is None:  # raised by the client: no connection, or it was lost
            return isinstance(error, psycopg.OperationalError | psycopg.InterfaceError)
        return error.sqlstate.startswith("08") or error.sqlstate in _UNAVAILABLE_SQLSTATES
    return False


def database_busy(exc: BaseException) -> bool:
    """Of database_unavailable's failures, those of a database that is up but busy, not away: the
    pool's checkout timed out, or SQLite's file stayed locked past busy_timeout. Other work (an
    agent's lease renewal) may well be getting through meanwhile."""
    if isinstance(exc, PoolTimeout):
        return True
    error = exc.orig if isinstance(exc, DBAPIError) else exc
    return isinstance(error, sqlite3.OperationalError) and "database is locked" in str(error)


class _Session(AsyncSession):
    async def close(self) -> None:
        """Closing rolls back what was left uncommitted; on a connection the database dropped there
        is nothing left to roll back (the server ended the transaction with the connection, and
        SQLAlchemy has invalidated it). Raised there, the failure would outlive the request it
        belongs to: a route's session closes after its answer is sent, and Starlette turns an error
        then into an unhandled 500 logged with its traceback for an answer that went out whole."""
        try:
            await super().close()
        except DBAPIError as exc:
            if not database_unavailable(exc):
                raise


class UnavailableLog:
    """An outage's warnings, for what answers callers while the database cannot take work (the
    API's 503s, the agents' gRPC UNAVAILABLE) and for background work it fails (outage_noted): the
    first at once, then one line per `every` seconds naming how many more there were since the last
    line, instead of a line (or a traceback) for each."""

    def __init__(
        self, every: float = 10.0, clock: Callable[[], float] = time.monotonic, *, answer: str = "503"
    ) -> None:
        self._every = every
        self._answer = answer
        self._clock = clock
        self._logged_at: float | None = None
        self._unlogged = 0

    def _due(self) -> int | None:
        """How many went unlogged since the last line, if a line is due now; else None."""
        now = self._clock()
        if self._logged_at is not None and now - self._logged_at < self._every:
            self._unlogged += 1
            return None
        unlogged, self._logged_at, self._unlogged = self._unlogged, now, 0
        return unlogged

    def note(self, method: str, path: str, exc: BaseException, request_id: str | None) -> None:
        unlogged = self._due()
        if unlogged is None:
            return
        since = f" ({unlogged} more answered {self._answer} since the last line)" if unlogged else ""
        log.warning(
            "database unavailable, answered %s to %s %s%s: %s",
            self._answer,
            method,
            path,
            since,
            brief_error(exc),
            extra={"request_id": request_id},
        )

    def outage_noted(self, what: str, exc: BaseException) -> bool:
        """Whether `what` (a background job's step, retried by its loop) failed for the database's
        being unavailable, said in the window's line if so; any other error is the caller's to log."""
        if not database_unavailable(exc):
            return False
        unlogged = self._due()
        if unlogged is not None:
            since = f" ({unlogged} more failures since the last line)" if unlogged else ""
            log.warning("database unavailable, %s failed; retrying%s: %s", what, since, brief_error(exc))
        return True


class Database:
    """One engine and session factory per process."""

    def __init__(self, database_url: str, **engine_kwargs: Any) -> None:
        self.url = database_url
        self.engine = create_engine(database_url, **engine_kwargs)
        self.changes = ChangeFeed(database_url)
        self.sessions = async_sessionmaker(
            self.engine, class_=_Session, expire_on_commit=False, info=self.changes.session_info()
        )

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self.sessions() as session:
            yield session

    async def start(self) -> None:
        await self.changes.start()

    async def dispose(self) -> None:
        await self.changes.stop()
        await self.engine.dispose()


# Tables of high-volume rows that name a monitor without a foreign key (writers and a monitor's
# deletion exclude each other instead, and the deletion removes its rows after it commits).
UNCONSTRAINED_MONITOR_TABLES = ("check_results", "ai_events")


async def deleted_monitor_ids(session: AsyncSession, table: str) -> list[str]:
    """Ids of deleted monitors that still have rows in `table` (one of UNCONSTRAINED_MONITOR_TABLES):
    what a deletion left when its process stopped before removing them. Walks the table's
    (monitor_id, ...) index one monitor at a time (a recursive skip scan), not its rows."""
    if table not in UNCONSTRAINED_MONITOR_TABLES:
        raise ValueError(f"{table} is not a table of unconstrained monitor ids")
    rows = await session.execute(
        text(
            f"""
            WITH RECURSIVE ids(monitor_id) AS (
                SELECT (SELECT monitor_id FROM {table} ORDER BY monitor_id LIMIT 1)
                UNION ALL
                SELECT (
                    SELECT monitor_id FROM {table}
                    WHERE monitor_id > ids.monitor_id ORDER BY monitor_id LIMIT 1
                )
                FROM ids WHERE ids.monitor_id IS NOT NULL
            )
            SELECT monitor_id FROM ids
            WHERE monitor_id IS NOT NULL
                AND NOT EXISTS (SELECT 1 FROM monitors WHERE monitors.id = ids.monitor_id)
            """
        )
    )
    return [row[0] for row in rows]

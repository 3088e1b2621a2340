"""Database plumbing: async engines for PostgreSQL and SQLite, sessions, portable column types."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from operator import itemgetter
from pathlib import Path
from typing import Any, NamedTuple

from asyncpg.exceptions import (  # type: ignore[import-untyped]
    CannotConnectNowError,
    ConnectionDoesNotExistError,
    PostgresConnectionError,
)
from sqlalchemy import BigInteger, DateTime, Dialect, Integer, Table, event, insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, MissingGreenlet
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool
from sqlalchemy.types import TypeDecorator
from sqlalchemy.util import await_only

from shared import jsontext, sqlite_driver

# An auto-incrementing 64-bit key; SQLite only auto-increments an INTEGER PRIMARY KEY.
BigIntKey = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware (SQLite keeps no offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("timestamps must be timezone-aware")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def bind_processor(self, dialect: Dialect) -> Callable[[datetime | None], Any] | None:
        # On SQLite the value becomes text in one step instead of three (this type's conversion, SQLAlchemy's
        # wrapper, SQLite DATETIME's field-by-field format): a twentieth of the batch route's time went to them.
        return _sqlite_text if dialect.name == "sqlite" else super().bind_processor(dialect)


# Texts of recent timestamps: one report's rows repeat a few instants (its "now", its deadlines) dozens of times, and
# a lookup is a fiftieth of a conversion. Equal instants have equal texts whatever their offset, so equality is the key.
_TEXTS: dict[datetime, str] = {}
_TEXTS_KEPT = 4096


def _sqlite_text(value: datetime | None) -> str | None:
    """A timestamp as SQLite stores it: UTC, no offset, in SQLAlchemy's SQLite DATETIME text form."""
    if value is None:
        return None
    if value.tzinfo is None:  # before the lookup: a naive value must fail, not match an aware one's text
        raise ValueError("timestamps must be timezone-aware")
    text = _TEXTS.get(value)
    if text is None:
        if value.tzinfo is UTC:  # the usual case: drop the "+00:00"
            text = value.isoformat(" ", "microseconds")[:-6]
        else:
            text = value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
        if len(_TEXTS) >= _TEXTS_KEPT:
            _TEXTS.clear()
        _TEXTS[value] = text
    return text


def is_sqlite(url: str) -> bool:
    """Whether a database URL names SQLite."""
    return make_url(url).get_backend_name() == "sqlite"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Take the write lock when a transaction begins (BEGIN IMMEDIATE below), so two writers queue on the
    # busy timeout instead of one failing with "database is locked" when it upgrades from reading.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    # WAL lets readers run beside the writer; FULL sync so an acknowledged commit survives power loss.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


# How long a writer queues for its turn in this process before it falls back to SQLite's own busy wait.
WRITE_TURN_SECONDS = 30.0
_TURN = "jiesu_write_turn"


class _WriteTurns:
    """Write transactions on one SQLite file take turns on the event loop, first come first served.

    SQLite lets one writer at a time into a file; a writer that finds it taken sleeps in SQLite's busy handler in
    growing steps (1, 2, 5, 10 … 100 ms) and so often wakes long after the file was free. Writers of the same
    process queue here instead and start the moment the previous one commits, whichever engine they use (a
    service has several on its file: requests, consumers, the relay); other processes (the embedded bus is
    shared) are waited for by ``sqlite_driver`` in short steps.
    """

    def __init__(self) -> None:
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()

    def begin(self, conn: Any) -> None:
        if conn.get_execution_options().get("read_only"):
            # Readers begin deferred: in WAL mode they never wait for a writer.
            conn.exec_driver_sql("BEGIN")
            return
        if _TURN not in conn.info:
            self._take(conn)
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            _give_back(conn.info)
            raise

    def _take(self, conn: Any) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # a synchronous caller: SQLite's busy wait alone
            return
        lock = self._locks.setdefault(loop, asyncio.Lock())
        try:
            await_only(asyncio.wait_for(lock.acquire(), WRITE_TURN_SECONDS))
        except TimeoutError:
            return  # a turn held this long is stuck: go on and let SQLite's busy timeout decide
        except MissingGreenlet:  # not inside SQLAlchemy's async bridge: SQLite's busy wait alone
            return
        conn.info[_TURN] = lock


_FILES_TURNS: dict[str, _WriteTurns] = {}


def _turns_of(database: str | None) -> _WriteTurns:
    """The turns of a SQLite file, one for all the process's engines on it (an engine's own when in memory)."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return _WriteTurns()
    return _FILES_TURNS.setdefault(str(Path(database).resolve()), _WriteTurns())


def _give_back(info: dict[str, Any]) -> None:
    lock = info.pop(_TURN, None)
    if lock is not None and lock.locked():
        lock.release()


def _end_of_transaction(conn: Any) -> None:
    _give_back(conn.info)


def _returned(_dbapi_connection: Any, record: Any) -> None:
    # A connection returned or invalidated without a commit or rollback event still gives its turn back.
    if record is not None:
        _give_back(record.info)


def _reset(dbapi_connection: Any, record: Any, _reset_state: Any) -> None:
    _returned(dbapi_connection, record)


def _invalidated(dbapi_connection: Any, record: Any, _exception: BaseException | None) -> None:
    _returned(dbapi_connection, record)


@asynccontextmanager
async def reading(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection for reads only: on SQLite it does not take the write lock."""
    async with engine.connect() as conn:
        yield await conn.execution_options(read_only=True)


def create_engine(url: str, *, pool_size: int = 10, pooled: bool = True) -> AsyncEngine:
    """Create an async engine; SQLite files get their folder, WAL and a long busy timeout."""
    parsed = make_url(url)
    # JSON columns written and read as event bodies are (compact, by orjson).
    options: dict[str, Any] = {"json_serializer": jsontext.dumps_text, "json_deserializer": jsontext.loads}
    if not pooled:
        options["poolclass"] = NullPool
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        if parsed.get_driver_name() == "aiosqlite":
            options["module"] = sqlite_driver.dbapi()  # statements on the event loop, commits on the thread
        engine = create_async_engine(url, connect_args={"timeout": 30}, **options)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        turns = _turns_of(parsed.database)
        event.listen(engine.sync_engine, "begin", turns.begin)
        event.listen(engine.sync_engine, "commit", _end_of_transaction)
        event.listen(engine.sync_engine, "rollback", _end_of_transaction)
        event.listen(engine.sync_engine.pool, "checkin", _returned)
        event.listen(engine.sync_engine.pool, "reset", _reset)
        event.listen(engine.sync_engine.pool, "invalidate", _invalidated)
        event.listen(engine.sync_engine.pool, "soft_invalidate", _invalidated)
        return engine
    if pooled:
        options.update(pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)
    return create_async_engine(url, **options)


_UNREACHABLE = (
    ConnectionError,
    TimeoutError,
    PostgresConnectionError,
    CannotConnectNowError,
    ConnectionDoesNotExistError,
)


def database_unreachable(error: BaseException) -> bool:
    """Whether an error means the database cannot be reached right now (down or restarting), not a fault of the work."""
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True
    seen: BaseException | None = error
    for _ in range(5):  # the error, SQLAlchemy's wrapper's original, the driver's own cause
        if seen is None:
            return False
        if isinstance(seen, _UNREACHABLE):
            return True
        seen = seen.orig if isinstance(seen, DBAPIError) else seen.__cause__
    return False


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded objects usable after commit."""
    return async_sessionmaker(engine, expire_on_commit=False)


class _RowsPlan(NamedTuple):
    """How rows of one shape go straight to the driver: the statement, each row's values, their conversions.

    On SQLite ``sql`` is the whole insert of one row's values; on PostgreSQL it is the insert of one array per column
    (``unnest``) with ``{}`` where each array's parameter number goes, so that several tables' rows can share one
    statement, and ``rows`` is the SELECT of those arrays' rows in their order (for other statements than an insert).
    """

    sql: str
    values: Callable[[dict[str, Any]], tuple[Any, ...]]
    conversions: tuple[tuple[int, Callable[[Any], Any]], ...]
    width: int
    keys: tuple[str, ...]
    defaulted: bool  # a column left out has a default Python computes: an insert must take SQLAlchemy's path
    rows: str = ""


class ArrayPart(NamedTuple):
    """PostgreSQL: one data-modifying statement reading its rows from arrays, one per column.

    ``sql`` has ``{}`` where each array's parameter number goes; several parts share one statement
    (``insert_together``).
    """

    sql: str
    arrays: list[list[Any]]


# Plans by table and the rows' columns, for SQLite and PostgreSQL. Every engine here is made by create_engine, so
# any of one dialect converts values alike (the same JSON writer): the first engine's conversions serve them all.
_PLANS: dict[tuple[str, Table, tuple[str, ...]], _RowsPlan | None] = {}
_ROW_NUMBER = "jiesu_row"  # the ordinality column of a PostgreSQL plan: rows keep their order (and sequence values)


def _plan(table: Table, keys: tuple[str, ...], dialect: Dialect) -> _RowsPlan | None:
    shape = (dialect.name, table, keys)
    if shape not in _PLANS:
        _PLANS[shape] = _rows_plan(table, keys, dialect)
    return _PLANS[shape]


def _rows_plan(table: Table, keys: tuple[str, ...], dialect: Dialect) -> _RowsPlan | None:
    """The straight path for rows naming these columns, or None when one is not the table's."""
    columns = [table.c.get(key) for key in keys]
    named = {column.key for column in columns if column is not None}
    if len(named) != len(keys):
        return None
    defaulted = any(c.default is not None for c in table.c if c.key not in named)
    conversions = []
    for index, column in enumerate(columns):
        assert column is not None
        convert = column.type.dialect_impl(dialect).bind_processor(dialect)
        if convert is not None:
            conversions.append((index, convert))
    prepare = dialect.identifier_preparer
    names = [prepare.format_column(column) for column in columns if column is not None]
    getter = itemgetter(*keys)
    values: Callable[[dict[str, Any]], tuple[Any, ...]] = getter if len(keys) > 1 else lambda row: (getter(row),)
    if dialect.name == "postgresql":
        arrays = ", ".join(
            f"${{{index}}}::{column.type.compile(dialect=dialect)}[]"
            for index, column in enumerate(c for c in columns if c is not None)
        )
        read = ", ".join(f"u.{name}" for name in names)
        rows = (
            f"SELECT {read} FROM unnest({arrays}) "
            f"WITH ORDINALITY AS u({', '.join(names)}, {_ROW_NUMBER}) ORDER BY u.{_ROW_NUMBER}"
        )
        sql = f"INSERT INTO {prepare.format_table(table)} ({', '.join(names)}) {rows}"
        return _RowsPlan(sql, values, tuple(conversions), len(keys), keys, defaulted, rows)
    sql = f"INSERT INTO {prepare.format_table(table)} ({', '.join(names)}) VALUES ({', '.join('?' * len(keys))})"
    return _RowsPlan(sql, values, tuple(conversions), len(keys), keys, defaulted)


def _driver_rows(plan: _RowsPlan, rows: list[dict[str, Any]]) -> list[tuple[Any, ...]] | None:
    """The rows as the driver's tuples, or None when they do not all name the plan's columns."""
    if any(len(row) != plan.width for row in rows):
        return None
    try:
        if not plan.conversions:
            return [plan.values(row) for row in rows]
        params = []
        for row in rows:
            values = list(plan.values(row))
            for index, convert in plan.conversions:
                values[index] = convert(values[index])
            params.append(tuple(values))
        return params
    except KeyError:  # as many columns as the first row, not the same ones
        return None


def _driver_columns(plan: _RowsPlan, rows: list[dict[str, Any]]) -> list[list[Any]] | None:
    """The rows as one list of converted values per column, or None when they do not all name the plan's columns."""
    if any(len(row) != plan.width for row in rows):
        return None
    try:
        columns = [[row[key] for row in rows] for key in plan.keys]
    except KeyError:  # as many columns as the first row, not the same ones
        return None
    for index, convert in plan.conversions:
        columns[index] = [convert(value) for value in columns[index]]
    return columns


def _arrays(
    table: Table, rows: list[dict[str, Any]], dialect: Dialect, *, inserting: bool
) -> tuple[_RowsPlan, list[list[Any]]] | None:
    """PostgreSQL: the plan for the rows' shape and their arrays, or None when they must take SQLAlchemy's path."""
    plan = _plan(table, tuple(rows[0]), dialect)
    if plan is None or (inserting and plan.defaulted):
        return None
    columns = _driver_columns(plan, rows)
    return None if columns is None else (plan, columns)


def insert_part(
    table: Table,
    rows: list[dict[str, Any]],
    dialect: Dialect,
    *,
    adding: tuple[tuple[str, ...], tuple[str, ...]] = ((), ()),
) -> ArrayPart | None:
    """PostgreSQL: the rows' INSERT as a part of a statement, in their order; None where SQLAlchemy must fill in.

    ``adding=(keys, counters)``: an upsert that, where a row with those keys exists, adds the counters to it.
    """
    found = _arrays(table, rows, dialect, inserting=True)
    if found is None:
        return None
    plan, arrays = found
    keys, counters = adding
    sql = plan.sql
    if keys:
        prepare, name = dialect.identifier_preparer, dialect.identifier_preparer.format_table(table)
        quoted = [prepare.format_column(table.c[key]) for key in keys]
        added = [prepare.format_column(table.c[counter]) for counter in counters]
        sets = ", ".join(f"{c} = {name}.{c} + EXCLUDED.{c}" for c in added)
        sql += f" ON CONFLICT ({', '.join(quoted)}) DO UPDATE SET {sets}"
    return ArrayPart(sql, arrays)


def update_part(table: Table, rows: list[dict[str, Any]], key: str, dialect: Dialect) -> ArrayPart | None:
    """PostgreSQL: one UPDATE of the rows whose ``key`` column the rows name, setting their other columns."""
    found = _arrays(table, rows, dialect, inserting=False)
    if found is None:
        return None
    plan, arrays = found
    prepare, name = dialect.identifier_preparer, dialect.identifier_preparer.format_table(table)
    columns = {k: prepare.format_column(table.c[k]) for k in plan.keys}
    sets = ", ".join(f"{c} = u.{c}" for k, c in columns.items() if k != key)
    sql = f"UPDATE {name} SET {sets} FROM ({plan.rows}) AS u WHERE {name}.{columns[key]} = u.{columns[key]}"
    return ArrayPart(sql, arrays)


async def insert_together(
    connection: AsyncConnection,
    inserts: dict[Table, list[dict[str, Any]]],
    *,
    then: str | None = None,
    parts: Sequence[ArrayPart] = (),
) -> None:
    """PostgreSQL: several tables' plain rows in one statement (one round trip), then ``parts`` (other writes of
    arrays), and ``then`` (a parameterless SELECT, e.g. a NOTIFY) in the same statement after them; the writes run in
    that order.

    Each table's rows go as one array per column through ``unnest``, in their order; rows of mixed shapes, or
    leaving a column to a default Python computes, take SQLAlchemy's insert first, on their own.
    """
    writes: list[ArrayPart] = []
    for table, rows in inserts.items():
        if not rows:
            continue
        part = insert_part(table, rows, connection.dialect)
        if part is None:
            await connection.execute(insert(table), rows)
            continue
        writes.append(part)
    writes.extend(parts)
    params: list[list[Any]] = []
    texts: list[str] = []
    for part in writes:
        texts.append(part.sql.format(*range(len(params) + 1, len(params) + len(part.arrays) + 1)))
        params.extend(part.arrays)
    if not texts:
        if then is not None:
            await connection.exec_driver_sql(then)
        return
    if then is None and len(texts) == 1:
        statement = texts[0]
    else:
        # Data-modifying WITH parts all run to completion whether or not the final query reads them, and PostgreSQL
        # runs them last to first: written in reverse, they run in the order given (the order the tables' locks are
        # taken in, the same as statement by statement; tests/shared/test_insert_rows.py checks it).
        joined = ", ".join(f"w{n} AS ({text})" for n, text in reversed(list(enumerate(texts))))
        statement = f"WITH {joined} {then or 'SELECT 1'}"
    await connection.exec_driver_sql(statement, tuple(params))


async def insert_rows(executor: AsyncSession | AsyncConnection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert plain rows (column key -> Python value) in one statement of the caller's transaction.

    Rows that all name the same columns, none of them left to a default Python computes, go to the driver as they
    are: on SQLite as tuples (SQLAlchemy's compiling and its per-row parameter dictionaries cost more than SQLite's
    inserting), on PostgreSQL as one array per column (``insert_together``). Values are converted by the columns' own
    types, as SQLAlchemy would; anything else takes SQLAlchemy's insert (which sorts rows of mixed shapes out, or
    says what is wrong with them).
    """
    if not rows:
        return
    if isinstance(executor, AsyncSession):
        await executor.flush()  # the ORM's pending rows first: these may refer to them
        connection = await executor.connection()
    else:
        connection = executor
    dialect = connection.dialect
    if dialect.name == "postgresql":
        await insert_together(connection, {table: rows})
        return
    plan = _plan(table, tuple(rows[0]), dialect) if dialect.name == "sqlite" else None
    params = None if plan is None or plan.defaulted else _driver_rows(plan, rows)
    if plan is None or params is None:
        await connection.execute(insert(table), rows)
        return
    await connection.exec_driver_sql(plan.sql, params)


_BUFFER = "jiesu.write_buffer"


class WriteBuffer:
    """Rows a consumer chunk appends (outbox, trail, timers) kept for one multi-row insert per table at its end.

    Row order is kept per table, so the outbox's sequence still follows the order events were written. On
    PostgreSQL all the tables' rows, and a query to send after them (``then``: the relays' NOTIFY), are one statement.

    ``merges`` are writes a chunk sums up as it goes (counters, changed rows), written after the inserts in name
    order. On PostgreSQL a merge with a builder in ``parts`` joins the same statement: the builder returns its
    writes as array parts, or None to write as on SQLite (it must then leave its state as it found it).
    """

    def __init__(self) -> None:
        self.inserts: dict[Table, list[dict[str, Any]]] = {}
        self.merges: dict[str, tuple[Callable[[AsyncSession, Any], Awaitable[None]], Any]] = {}
        self.parts: dict[str, Callable[[Dialect, Any], list[ArrayPart] | None]] = {}
        self.then: str | None = None  # a parameterless SELECT sent with the rows

    def add(self, table: Table, rows: list[dict[str, Any]]) -> None:
        """Queue rows for the table."""
        self.inserts.setdefault(table, []).extend(rows)

    def mark(self) -> dict[Table, int]:
        """Where the queues stand, to undo what a rolled-back savepoint added."""
        return {table: len(rows) for table, rows in self.inserts.items()}

    def rollback_to(self, mark: dict[Table, int]) -> None:
        """Drop rows queued after the mark."""
        for table, rows in self.inserts.items():
            del rows[mark.get(table, 0) :]

    async def flush(self, session: AsyncSession) -> None:
        """Write everything queued (SQLite: a statement per table; PostgreSQL: one for all), then the merged writes."""
        await session.flush()  # the ORM's pending rows first: buffered rows may refer to them
        inserts, self.inserts = self.inserts, {}
        then, self.then = self.then, None
        merges, self.merges = self.merges, {}
        builders, self.parts = self.parts, {}
        # One order of tables for every chunk, so concurrent chunks never deadlock (a statement's parts run in the
        # order given, see insert_together).
        names = sorted(merges)
        connection = await session.connection()
        if connection.dialect.name == "postgresql":
            parts: list[ArrayPart] = []
            while names and names[0] in builders:
                built = builders[names[0]](connection.dialect, merges[names[0]][1])
                if built is None:
                    break
                parts.extend(built)
                names.pop(0)
            await insert_together(connection, inserts, then=then, parts=parts)
        else:
            for table, rows in inserts.items():
                await insert_rows(connection, table, rows)
            if then is not None:
                await connection.exec_driver_sql(then)
        for name in names:
            write, state = merges[name]
            await write(session, state)


def write_buffer(session: AsyncSession) -> WriteBuffer | None:
    """The buffer of the session's current consumer chunk, if it has one."""
    buffer = session.info.get(_BUFFER)
    return buffer if isinstance(buffer, WriteBuffer) else None


async def flush_buffer(session: AsyncSession) -> None:
    """Write what the session buffered so far (before a statement that must see it)."""
    buffer = write_buffer(session)
    if buffer is not None:
        await buffer.flush(session)


@asynccontextmanager
async def buffered_writes(session: AsyncSession) -> AsyncIterator[WriteBuffer]:
    """Buffer appends for the block and write them at its end, inside the caller's transaction.

    Inside another such block the outer buffer takes them, and they are written at the outer block's end.
    """
    outer = write_buffer(session)
    if outer is not None:
        yield outer
        return
    buffer = WriteBuffer()
    session.info[_BUFFER] = buffer
    try:
        yield buffer
        await buffer.flush(session)
    finally:
        session.info.pop(_BUFFER, None)

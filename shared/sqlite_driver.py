"""SQLite for the async engines: aiosqlite, with the short calls made on the event loop instead of its thread.

aiosqlite hands every call (make a cursor, execute, fetch, close the cursor) to a thread of its own and waits for
the answer: four trips between threads for one statement, about 250 us of CPU against 25 us for the statement
itself on this project's queries (``bench/sqlite_driver.py``). Here a statement, its fetches and a rollback run at
once on the caller's thread; what may wait on the disk or on another process, or runs long, goes to the thread:
connecting (and the pragmas, which may take the file's lock), ``COMMIT`` (the fsync of ``synchronous=FULL``),
``ANALYZE`` and ``VACUUM`` (housekeeping's long passes), closing. A ``BEGIN IMMEDIATE`` is tried here without
waiting; when another process's writer holds the lock it is tried again every millisecond or two (``LOCK_STEPS``)
while the loop goes on, up to the connection's busy timeout. SQLAlchemy's own cursor over such a connection
(``_Cursor``) calls the sqlite3 cursor directly: a statement with its rows is one await instead of four.
SQLite's own busy handler would sleep in growing steps (1, 2, 5, 10 … 100 ms) and, with three processes writing
the embedded bus, often woke long after the lock was free or lost it again to a writer that came later.

In WAL mode, which every connection is put in, a statement inside a transaction never waits for another
connection: readers see their snapshot, and a writer already holds the lock its ``BEGIN IMMEDIATE`` took. A long
statement (a housekeeping batch of deletes, a count over a large table) holds the event loop while it runs, as any
CPU work of the process does.
"""

from __future__ import annotations

import asyncio
import collections
import sqlite3
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiosqlite
from sqlalchemy import util
from sqlalchemy.connectors.asyncio import AsyncAdapt_dbapi_connection
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.util.concurrency import await_

# Statements that may wait for the file's lock or the disk, or run long: sent to the connection's thread.
_WAITING = ("BEGIN IMMEDIATE", "BEGIN EXCLUSIVE", "PRAGMA", "VACUUM", "ANALYZE", "COMMIT", "END", "CHECKPOINT")
_INLINE_ON_CONNECTION = frozenset({"cursor", "rollback", "create_function"})
_INLINE_ON_CURSOR = frozenset({"execute", "executemany", "fetchone", "fetchmany", "fetchall", "close"})


_HERE, _TRY_LOCK, _THREAD = "here", "try the lock here", "thread"

# Pauses between tries for a write lock another process holds (seconds): short, as write transactions are.
LOCK_STEPS = (0.0005, 0.001, 0.001, 0.002)


def _where(fn: Callable[..., Any], args: tuple[Any, ...]) -> str:
    """Where a call of aiosqlite's runs: on the caller's thread, the lock tried there first, or on the thread."""
    owner = getattr(fn, "__self__", None)
    name = getattr(fn, "__name__", "")
    if isinstance(owner, sqlite3.Connection):
        return _HERE if name in _INLINE_ON_CONNECTION else _THREAD
    if not isinstance(owner, sqlite3.Cursor) or name not in _INLINE_ON_CURSOR:
        return _THREAD
    if name not in ("execute", "executemany") or not args or not isinstance(args[0], str):
        return _HERE
    head = args[0].lstrip()[:16].upper()
    if name == "execute" and head.startswith("BEGIN IMMEDIATE"):
        return _TRY_LOCK
    return _THREAD if head.startswith(_WAITING) else _HERE


class Connection(aiosqlite.Connection):
    """An aiosqlite connection whose short calls run on the caller's thread (see the module's text)."""

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if self._running and self._connection is not None:
            where = _where(fn, args)
            if where == _HERE:
                return fn(*args, **kwargs)
            if where == _TRY_LOCK:
                return await self._lock(fn, args)
        return await super()._execute(fn, *args, **kwargs)  # type: ignore[no-untyped-call]

    async def _lock(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        """Begin the write transaction, trying again in short steps while another connection holds the lock."""
        sqlite = self._conn
        (waits,) = sqlite.execute("PRAGMA busy_timeout").fetchone()
        deadline = time.monotonic() + waits / 1000
        tries = 0
        sqlite.execute("PRAGMA busy_timeout = 0")
        try:
            while True:
                try:
                    fn(*args)
                    return
                except sqlite3.OperationalError as error:
                    busy = "locked" in str(error) or "busy" in str(error)
                    if sqlite.in_transaction or not busy or time.monotonic() >= deadline:
                        raise
                await asyncio.sleep(LOCK_STEPS[min(tries, len(LOCK_STEPS) - 1)])
                tries += 1
        finally:
            sqlite.execute(f"PRAGMA busy_timeout = {int(waits)}")


class _Cursor(AsyncAdapt_aiosqlite_cursor):
    """SQLAlchemy's cursor over a connection of this module, calling sqlite3's cursor directly where it can.

    SQLAlchemy's adapter awaits every call of an aiosqlite cursor (make it, enter it, execute, close), each a trip
    out of SQLAlchemy's greenlet and back, although ``Connection._execute`` answers most of them at once. Here the
    sqlite3 cursor is made, read and closed directly, and a statement with its rows is one await: answered at once
    on the event loop, or sent to the thread (or the lock tried) as ``Connection._execute`` decides.
    """

    __slots__ = ("_raw",)
    _awaitable_cursor_close = False

    def __init__(self, adapt_connection: AsyncAdapt_dbapi_connection) -> None:
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._soft_closed_memoized = util.EMPTY_DICT
        self._rows = collections.deque()
        try:
            self._raw: sqlite3.Cursor = self._driver()._conn.cursor()
        except Exception as error:
            adapt_connection._handle_exception(error)

    def _driver(self) -> Connection:
        connection = self._connection
        assert isinstance(connection, Connection)
        return connection

    @property
    def description(self) -> Any:
        return self._raw.description

    @property
    def rowcount(self) -> int:
        return self._raw.rowcount

    @property
    def lastrowid(self) -> Any:
        return self._raw.lastrowid

    @property
    def arraysize(self) -> int:
        return self._raw.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._raw.arraysize = value

    def execute(self, operation: Any, parameters: Any = None) -> Any:
        args = (operation,) if parameters is None else (operation, parameters)
        return self._run(self._raw.execute, args)

    def executemany(self, operation: Any, seq_of_parameters: Any) -> Any:
        return self._run(self._raw.executemany, (operation, seq_of_parameters))

    def _run(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        try:
            return await_(self._call(fn, args))
        except Exception as error:
            self._adapt_connection._handle_exception(error)

    async def _call(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        # One await for the statement and its rows (SQLAlchemy wants its execute to have awaited something).
        connection = self._driver()
        if connection._running and connection._connection is not None and _where(fn, args) == _HERE:
            result = fn(*args)
        else:
            async with self._adapt_connection._execute_mutex:
                result = await connection._execute(fn, *args)
        if self._raw.description is not None:
            self._rows = collections.deque(self._raw.fetchall())
        return result

    def close(self) -> None:
        self._rows.clear()
        self._raw.close()


class _AdaptedConnection(AsyncAdapt_aiosqlite_connection):
    """SQLAlchemy's connection over this module's: its cursors and rollbacks called directly (see ``_Cursor``)."""

    __slots__ = ()
    _cursor_cls = _Cursor

    @property
    def driver_connection(self) -> Connection:
        connection = self._connection
        assert isinstance(connection, Connection)
        return connection

    def rollback(self) -> None:
        connection = self.driver_connection
        if not (connection._running and connection._connection is not None):
            super().rollback()
            return
        try:
            connection._connection.rollback()
        except Exception as error:
            self._handle_exception(error)


class _Dbapi(AsyncAdapt_aiosqlite_dbapi):
    def connect(self, *arg: Any, **kw: Any) -> AsyncAdapt_aiosqlite_connection:
        adapted = super().connect(*arg, **kw)
        return _AdaptedConnection(self, adapted._connection)


def connect(database: str | Path, *, iter_chunk_size: int = 64, **kwargs: Any) -> Connection:
    """Open a connection as ``aiosqlite.connect`` does; the sqlite3 connection is used from two threads, in turn."""
    location = database.decode() if isinstance(database, bytes) else str(database)
    kwargs["check_same_thread"] = False

    def connector() -> sqlite3.Connection:
        connection: sqlite3.Connection = sqlite3.connect(location, **kwargs)
        return connection

    return Connection(connector, iter_chunk_size)


def _module() -> types.ModuleType:
    module = types.ModuleType("jiesu_aiosqlite", __doc__)
    module.__dict__.update({k: v for k, v in vars(aiosqlite).items() if not k.startswith("__")})
    module.__version__ = aiosqlite.__version__  # type: ignore[attr-defined]
    module.connect = connect  # type: ignore[attr-defined]
    module.Connection = Connection  # type: ignore[attr-defined]
    return module


def dbapi() -> AsyncAdapt_aiosqlite_dbapi:
    """The DBAPI for SQLAlchemy's aiosqlite dialect (``create_async_engine(..., module=dbapi())``)."""
    return _Dbapi(_module(), sqlite3)

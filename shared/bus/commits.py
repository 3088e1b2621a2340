"""Cross-process wake-ups on a SQLite file: notice other connections' commits through PRAGMA data_version."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Callable

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger("jiesu.bus.commits")

Probe = Callable[[sqlite3.Connection], None]


def sqlite_file(engine: AsyncEngine) -> str | None:
    """The file behind a SQLite engine, or None (another database, or SQLite in memory)."""
    url = make_url(str(engine.url))
    if url.get_backend_name() != "sqlite" or url.query.get("uri"):
        return None
    database = url.database or ""
    return None if database in ("", ":memory:") else database


class CommitWatch:
    """Runs its probes whenever another connection, in this process or another, committed to one SQLite file.

    ``PRAGMA data_version`` on a connection kept for this alone changes when any other connection commits; it
    reads the WAL index in shared memory, a few microseconds and no query, so the watch can look every few
    milliseconds while work flows and back off to ``slowest`` when idle without burning CPU. The probes (cheap
    queries on the same connection) then decide whom to wake, so idle readers issue no queries of their own.
    """

    def __init__(self, path: str, *, fastest: float = 0.002, slowest: float = 0.02) -> None:
        self.path = path
        self.fastest = fastest
        self.slowest = slowest
        self.changes = 0  # how many times the file was seen changed (several commits between two looks count once)
        self.probes: list[Probe] = []
        self.on_error: Callable[[], None] | None = None  # when a look fails: wake everyone, their own reads retry
        self._conn: sqlite3.Connection | None = None
        self._version: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Future[None] | None = None

    def running(self) -> bool:
        """Whether the watch looks at the file from the running event loop."""
        task = self._task
        return task is not None and not task.done() and task.get_loop() is asyncio.get_running_loop()

    def start(self) -> None:
        """Take a first look now (so later commits count as changes), then keep looking in the background."""
        if self.running():
            return
        self._look()
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"commit-watch:{self.path}")

    def prod(self) -> None:
        """Look now rather than at the next tick (a commit was made in this process)."""
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    async def close(self) -> None:
        """Stop looking and close the connection."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            with contextlib.suppress(RuntimeError):  # its loop is closed already
                task.cancel()
            if task.get_loop() is asyncio.get_running_loop():  # a task of a loop that is gone cannot be awaited
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self._version = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        delay = self.fastest
        while True:
            delay = self.fastest if self._look() else min(delay * 2, self.slowest)
            wake = self._wake = loop.create_future()
            timer = loop.call_later(delay, _settle, wake)
            try:
                await wake
            finally:
                timer.cancel()
                self._wake = None

    def _look(self) -> bool:
        """Whether the file changed since the last look; runs the probes when it did."""
        # On the event loop: data_version and the probes read the WAL index and a few new rows, microseconds;
        # a thread hop would cost more than the work. timeout=0 so a lock never stalls the loop (next tick retries).
        try:
            if self._conn is None:
                self._conn = sqlite3.connect(self.path, timeout=0, isolation_level=None, check_same_thread=False)
            (version,) = self._conn.execute("PRAGMA data_version").fetchall()[0]
            if version == self._version:
                return False
            self._version = version
            self.changes += 1
            for probe in self.probes:
                probe(self._conn)
            return True
        except sqlite3.Error as error:
            if self._conn is not None:  # a fresh connection next time, in case this one is the trouble
                self._conn.close()
                self._conn, self._version = None, None
            log.debug("commit watch on %s could not look (%s); waking every reader", self.path, error)
            if self.on_error is not None:
                self.on_error()
            return False


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)

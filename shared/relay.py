"""Outbox relay: publishes a service's outbox in order and marks rows only after the bus acknowledged them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import zlib
from collections.abc import Awaitable, Callable
from typing import Any, BinaryIO

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.bus.base import Bus, OutgoingMessage
from shared.bus.commits import CommitWatch, sqlite_file
from shared.db import reading
from shared.events import utcnow
from shared.outbox import OUTBOX_CHANNEL, MessagingTables, event_from_row

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("jiesu.relay")

# With a commit watch the relay is woken by commits; it still reads the outbox this often, in case one slipped by.
_WATCHED_POLL_SECONDS = 5.0
# Woken by PostgreSQL notifications, it still reads this often (and notices a lost connection this soon).
_NOTIFIED_POLL_SECONDS = 1.0


class OutboxRelay:
    """Moves outbox rows to the bus; at-least-once, consumers drop duplicates by event id."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        tables: MessagingTables,
        bus: Bus,
        name: str,
        namespace: str = "",
        batch_size: int = 500,
        poll_seconds: float = 0.2,
        publish_timeout: float = 20.0,
    ) -> None:
        self.engine = engine
        self.tables = tables
        self.bus = bus
        self.name = name
        self.namespace = namespace
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self.publish_timeout = publish_timeout
        self.wakeup = asyncio.Event()
        self.published = 0
        self.failing_since: float | None = None  # monotonic time of the first failed publish in a row
        self.last_error: str | None = None
        self.wakeups = 0  # times a commit by another connection woke the relay (commit watch or notification)
        path = sqlite_file(engine)
        self.watch = CommitWatch(path) if path is not None else None
        if self.watch is not None:
            self.watch.probes.append(self._unpublished)
            self.watch.on_error = self.notify

    def _unpublished(self, conn: sqlite3.Connection) -> None:
        """Probe run by the watch after a commit to the service's database: wake the relay if rows wait."""
        outbox = self.tables.outbox.name
        if conn.execute(f"SELECT 1 FROM {outbox} WHERE published_at IS NULL LIMIT 1").fetchall():
            self.wakeups += 1
            self.wakeup.set()

    def notify(self) -> None:
        """Tell the relay that new rows were committed (saves a poll interval in-process)."""
        self.wakeup.set()

    def _notified(self, *_: object) -> None:
        """A PostgreSQL notification: a transaction that wrote outbox rows committed."""
        self.wakeups += 1
        self.wakeup.set()

    async def backlog(self) -> int:
        """How many events wait to be published."""
        outbox = self.tables.outbox
        async with reading(self.engine) as conn:
            query = select(func.count()).select_from(outbox).where(outbox.c.published_at.is_(None))
            return int((await conn.execute(query)).scalar_one())

    async def publish_once(self, lock: _LeaderLock | None = None) -> int:
        """Publish one batch in outbox order; return how many were published.

        On PostgreSQL the leader reads and marks on the connection that holds its lock (``lock``): two short
        transactions a batch on one connection, and a lost lock shows as a failed read (``LeaderLost``).
        """
        outbox = self.tables.outbox
        query = select(outbox).where(outbox.c.published_at.is_(None)).order_by(outbox.c.seq).limit(self.batch_size)
        leader = lock.connection if lock is not None else None
        if leader is not None:
            rows = await _on_lock(leader, lambda conn: conn.execute(query))
        else:
            async with reading(self.engine) as conn:
                rows = (await conn.execute(query)).all()
        if not rows:
            return 0
        # Bounded: past the timeout the rows stay unpublished here and readiness says degraded. Cancelling the
        # publish makes the Kafka bus drop its producer with whatever it buffered (a producer retries its batches
        # for as long as the broker is away, so keeping it would add one batch per attempt); the next attempt
        # starts a fresh producer from the outbox, and anything the old one did deliver is dropped by consumers.
        await asyncio.wait_for(
            self.bus.publish(
                [
                    OutgoingMessage(
                        topic=self.namespace + row.topic,
                        key=row.aggregateid,
                        event=event_from_row(row, with_data=False),
                        body=row.payload,  # as written: the data is encoded once, in the outbox, and not parsed
                    )
                    for row in rows
                ]
            ),
            timeout=self.publish_timeout,
        )
        mark = update(outbox).where(outbox.c.seq.in_([row.seq for row in rows])).values(published_at=utcnow())
        if leader is not None:
            await _on_lock(leader, lambda conn: conn.execute(mark))
        else:
            async with self.engine.begin() as conn:
                await conn.execute(mark)
        self.published += len(rows)
        return len(rows)

    async def run(self, stop: asyncio.Event) -> None:
        """Publish until stopped; back off while the bus or the database is unreachable, losing nothing."""
        try:
            await self._run(stop)
        finally:
            if self.watch is not None:
                await self.watch.close()

    async def _run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                async with _LeaderLock(self.engine, self.name, stop) as lock:
                    await self._publish_while_leader(lock, stop)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                # The database is away (the lock could not be taken or given back): wait and take it again.
                self._failed(error)
                log.warning("relay %s cannot reach its database (%s); retrying", self.name, error)
                await _sleep_or_stop(stop, 2.0)

    async def _publish_while_leader(self, lock: _LeaderLock, stop: asyncio.Event) -> None:
        delay = self.poll_seconds
        idle_wait = self.poll_seconds
        if self.watch is not None:
            self.watch.start()
            idle_wait = max(self.poll_seconds, _WATCHED_POLL_SECONDS)
        if await lock.listen(OUTBOX_CHANNEL, self._notified):
            idle_wait = max(self.poll_seconds, _NOTIFIED_POLL_SECONDS)
        while not stop.is_set():
            # Cleared before the read: a commit the read misses sets it again, so the wait below does not sleep on it.
            self.wakeup.clear()
            try:
                count = await self.publish_once(lock)
                delay = self.poll_seconds
                self.failing_since, self.last_error = None, None
            except asyncio.CancelledError:
                raise
            except LeaderLost as lost:
                # The database restarted (or dropped the connection) and ended the lock's session: another relay
                # may lead now. What this one published but did not mark is published again; consumers drop it.
                self._failed(lost)
                log.warning("relay %s lost its leader lock (%s); taking it again", self.name, lost)
                return
            except Exception as error:
                self._failed(error)
                log.warning("relay %s cannot publish yet (%s); retrying in %.1fs", self.name, error, delay)
                await _sleep_or_stop(stop, delay)
                delay = min(delay * 2, 5.0)
                continue
            if count < self.batch_size:
                waiter = asyncio.ensure_future(self.wakeup.wait())
                stopper = asyncio.ensure_future(stop.wait())
                await asyncio.wait({waiter, stopper}, timeout=idle_wait, return_when="FIRST_COMPLETED")
                waiter.cancel()
                stopper.cancel()

    def _failed(self, error: Exception) -> None:
        if self.failing_since is None:
            self.failing_since = asyncio.get_running_loop().time()
        self.last_error = f"{type(error).__name__}: {error}"


class LeaderLost(Exception):
    """The connection holding the relay's leader lock failed: the lock is gone with its session."""


async def _on_lock(conn: AsyncConnection, statement: Callable[[AsyncConnection], Awaitable[Any]]) -> Any:
    """Run one statement as its own transaction on the lock's connection; its rows, if it returns any."""
    try:
        result = await statement(conn)
        rows = result.all() if result.returns_rows else None
        await conn.commit()
        return rows
    except asyncio.CancelledError:
        raise
    except Exception as error:
        raise LeaderLost(f"{type(error).__name__}: {error}") from error


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


class _LeaderLock:
    """One relay per outbox publishes at a time, the others wait: on PostgreSQL a session advisory lock, on a SQLite
    file an exclusive lock on a file beside the database."""

    def __init__(self, engine: AsyncEngine, name: str, stop: asyncio.Event) -> None:
        self.engine = engine
        self.key = zlib.crc32(f"jiesu-relay:{name}".encode()) % (2**31)
        self.stop = stop
        self._conn: AsyncConnection | None = None
        self._listening: tuple[Any, str, Callable[..., None]] | None = None
        self._file: BinaryIO | None = None

    async def __aenter__(self) -> _LeaderLock:
        if self.engine.dialect.name == "sqlite":
            await self._take_file_lock()
            return self
        if self.engine.dialect.name != "postgresql":
            return self
        conn = await self.engine.connect()

        async def advisory() -> bool:
            got = (await conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key})).scalar()
            await conn.commit()
            return bool(got)

        try:
            await self._stand_by_until(advisory, f"another relay holds lock {self.key}")
        except BaseException:
            await _close_quietly(conn)
            raise
        self._conn = conn
        return self

    async def _take_file_lock(self) -> None:
        """On a SQLite file: an exclusive lock on a file beside it, held while this relay leads (released by the
        operating system when the process dies), so two processes serving one database publish it once."""
        path = sqlite_file(self.engine)
        if path is None or fcntl is None:
            return  # SQLite in memory belongs to one process; without flock (Windows) one relay per file is assumed
        handle = _lock_file(f"{path}.relay-{self.key}.lock")

        async def flocked() -> bool:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            return True

        try:
            taken = await self._stand_by_until(flocked, f"another process holds {handle.name}")
        except BaseException:
            handle.close()
            raise
        if taken:
            self._file = handle
        else:
            handle.close()

    async def _stand_by_until(self, taken: Callable[[], Awaitable[bool]], holder: str) -> bool:
        """Try to take the lock every 2 s until it is taken (True) or the relay is stopped (False)."""
        while not self.stop.is_set():
            if await taken():
                return True
            log.info("relay is standing by: %s and publishes this outbox", holder)
            await _sleep_or_stop(self.stop, 2.0)
        return False

    @property
    def connection(self) -> AsyncConnection | None:
        """The connection whose session holds the lock (PostgreSQL); None on SQLite, where the lock is a file's."""
        return self._conn

    async def listen(self, channel: str, callback: Callable[..., None]) -> bool:
        """LISTEN on the lock's own connection (PostgreSQL); False where there is none (SQLite)."""
        if self._conn is None:
            return False
        driver = (await self._conn.get_raw_connection()).driver_connection
        if driver is None or not hasattr(driver, "add_listener"):
            return False
        await driver.add_listener(channel, callback)
        self._listening = (driver, channel, callback)
        return True

    async def __aexit__(self, *exc: object) -> None:
        if self._listening is not None:
            # The connection goes back to the pool: it must not keep listening (and waking this relay).
            driver, channel, callback = self._listening
            self._listening = None
            with contextlib.suppress(Exception):
                await driver.remove_listener(channel, callback)
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await _close_quietly(conn)
        if self._file is not None:
            handle, self._file = self._file, None
            handle.close()  # closing the file gives the lock back


def _lock_file(path: str) -> BinaryIO:
    """The file the relays of one SQLite database lock (created empty; never written)."""
    return open(path, "a+b")


async def _close_quietly(conn: AsyncConnection) -> None:
    try:
        await conn.close()
    except Exception as error:  # a connection the database already dropped
        log.info("closing a dropped database connection: %s", error)

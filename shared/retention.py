"""Housekeeping: what has served its purpose is deleted, in small batches, so no table or log grows for ever.

- Published outbox rows older than ``keep_published_days`` (unpublished rows are never touched).
- Inbox rows older than ``keep_inbox_days``, but never one the bus could still deliver again: the inbox keeps
  every event at least as old as the bus's redelivery floor (``Bus.redelivery_floor``), so replaying a topic from
  its first offset, or re-driving an old dead letter, still finds its duplicates.
- On the embedded bus, messages older than ``keep_bus_days`` that every consumer group has read
  (``EmbeddedBus.prune``); Kafka deletes by its own topic retention.

On SQLite it also keeps the query planner's table statistics current (``refresh_statistics``): PostgreSQL's
autovacuum does that by itself, SQLite never does, and without them its planner can pick an index that makes a
list sort tens of thousands of rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import zlib
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import delete, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.bus.base import Bus
from shared.bus.embedded import EmbeddedBus
from shared.events import utcnow
from shared.outbox import MessagingTables

log = logging.getLogger("jiesu.retention")

# Clocks of the process that published an event and of the one that applied it may differ by this much.
CLOCK_MARGIN = timedelta(hours=1)
BATCH = 2000  # rows a delete transaction takes at most, so writers of the service never wait long behind it
FIRST_RUN_SECONDS = 60.0  # after start-up, before the first run (or the interval, when shorter)


@dataclass(frozen=True, slots=True)
class Reader:
    """A consumer group of the service, with what it subscribes to."""

    group: str
    topics: Sequence[str] = ()
    pattern: str | None = None


@dataclass(slots=True)
class Pruned:
    """What one housekeeping run deleted."""

    outbox: int = 0
    inbox: int = 0
    bus: int = 0
    analyzed: list[str] = field(default_factory=list)  # SQLite tables whose statistics were gathered again
    skipped: bool = False  # another instance held the housekeeping lock


async def prune_outbox(engine: AsyncEngine, tables: MessagingTables, *, before: datetime, batch: int = BATCH) -> int:
    """Delete outbox rows published before ``before``; how many went."""
    outbox = tables.outbox
    oldest = select(outbox.c.seq).where(outbox.c.published_at < before).order_by(outbox.c.published_at).limit(batch)
    gone = 0
    while True:
        async with engine.begin() as conn:
            deleted = (await conn.execute(delete(outbox).where(outbox.c.seq.in_(oldest)))).rowcount or 0
        gone += deleted
        if deleted < batch:
            return gone
        await asyncio.sleep(0)


async def prune_inbox(engine: AsyncEngine, tables: MessagingTables, *, before: datetime, batch: int = BATCH) -> int:
    """Delete inbox rows of events applied before ``before``; how many went.

    The keys are read first and deleted per consumer with ``event_id IN (...)``: a lookup in the primary key on
    SQLite and PostgreSQL alike.
    """
    inbox = tables.inbox
    oldest = (
        select(inbox.c.consumer, inbox.c.event_id)
        .where(inbox.c.processed_at < before)
        .order_by(inbox.c.processed_at)
        .limit(batch)
    )
    gone = 0
    while True:
        async with engine.begin() as conn:
            keys = (await conn.execute(oldest)).all()
            by_consumer: dict[str, list[str]] = defaultdict(list)
            for consumer, event_id in keys:
                by_consumer[consumer].append(event_id)
            for consumer, event_ids in by_consumer.items():
                await conn.execute(delete(inbox).where(inbox.c.consumer == consumer, inbox.c.event_id.in_(event_ids)))
        gone += len(keys)
        if len(keys) < batch:
            return gone
        await asyncio.sleep(0)


# A SQLite table's statistics are gathered again once its size is this many times (or this fraction of) what they
# were gathered at; tables smaller than STATISTICS_MIN_ROWS are left alone (any plan is fast on them).
STATISTICS_GROWTH = 2.0
STATISTICS_MIN_ROWS = 1000


async def refresh_statistics(engine: AsyncEngine) -> list[str]:
    """On SQLite, ANALYZE each table whose size moved by ``STATISTICS_GROWTH`` since its last ANALYZE (or that
    never had one); the tables analyzed. Nothing on PostgreSQL, whose autovacuum analyzes by itself.

    A table's size is read as the span of its rowids (two index lookups, never a count of its rows). ANALYZE reads
    every index whole (a sample of an index's first entries chose worse plans) on the connection's thread, so the
    service goes on meanwhile; the file's other writers wait for it (0.1-0.4 s for a large table, once per doubling).
    """
    if engine.dialect.name != "sqlite":
        return []
    async with engine.connect() as conn:
        tables = (
            (
                await conn.exec_driver_sql(
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
                    "AND sql NOT LIKE '%WITHOUT ROWID%'"
                )
            )
            .scalars()
            .all()
        )
        known: dict[str, int] = {}
        if (await conn.exec_driver_sql("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'")).first():
            for row in await conn.exec_driver_sql("SELECT tbl, stat FROM sqlite_stat1"):
                known[row.tbl] = max(known.get(row.tbl, 0), int(str(row.stat).split()[0]))
        stale = []
        for table in tables:
            # Each aggregate in a subquery of its own: SQLite reads a lone min() or max() off the end of the b-tree,
            # but min() and max() together in one query scan the whole table.
            span = (
                await conn.exec_driver_sql(
                    f'SELECT (SELECT max(rowid) FROM "{table}") - (SELECT min(rowid) FROM "{table}") + 1'
                )
            ).scalar() or 0
            before = known.get(table)
            if span < STATISTICS_MIN_ROWS and before is None:
                continue
            if before is None or not before / STATISTICS_GROWTH <= span <= before * STATISTICS_GROWTH:
                stale.append(table)
    for table in stale:
        async with engine.begin() as conn:
            await conn.exec_driver_sql(f'ANALYZE "{table}"')
        await asyncio.sleep(0)
    return stale


@dataclass
class Housekeeping:
    """Runs the deletes of one service every ``every`` seconds; one instance at a time on PostgreSQL."""

    name: str
    engine: AsyncEngine
    tables: MessagingTables
    bus: Bus
    readers: Sequence[Reader]
    dead_letter_topic: str
    keep_published: timedelta | None
    keep_inbox: timedelta | None
    keep_bus: timedelta | None
    every: float
    batch: int = BATCH
    runs: int = 0
    deleted: dict[str, int] = field(default_factory=lambda: {"outbox": 0, "inbox": 0, "bus": 0})
    _kept_for_ever: bool = field(default=False, init=False)

    async def run(self, stop: asyncio.Event) -> None:
        """Run until stopped; a failed run is logged and the next one comes at its time."""
        wait = min(FIRST_RUN_SECONDS, self.every)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait)
            if stop.is_set():
                return
            wait = self.every
            try:
                await self.run_once()
            except Exception as error:
                log.warning("%s housekeeping failed (%s); it runs again in %.0f s", self.name, error, self.every)

    async def run_once(self) -> Pruned:
        """One pass over the outbox, the inbox and the embedded bus."""
        async with self._turn() as mine:
            if not mine:
                return Pruned(skipped=True)
            started = time.monotonic()
            now = utcnow()
            pruned = Pruned()
            if self.keep_published is not None:
                pruned.outbox = await prune_outbox(
                    self.engine, self.tables, before=now - self.keep_published, batch=self.batch
                )
            try:
                before = await self._inbox_horizon(now)
            except Exception as error:
                log.warning("%s keeps its inbox this time: %s", self.name, error)
                before = None
            if before is not None:
                pruned.inbox = await prune_inbox(self.engine, self.tables, before=before, batch=self.batch)
            if self.keep_bus is not None and isinstance(self.bus, EmbeddedBus):
                pruned.bus = await self.bus.prune(
                    before=now - self.keep_bus, held_topics=[self.dead_letter_topic], batch=self.batch
                )
            pruned.analyzed = await refresh_statistics(self.engine)
        self.runs += 1
        for table, count in (("outbox", pruned.outbox), ("inbox", pruned.inbox), ("bus", pruned.bus)):
            self.deleted[table] += count
        if pruned.outbox or pruned.inbox or pruned.bus or pruned.analyzed:
            log.info(
                "%s housekeeping deleted %d published outbox rows, %d inbox rows, %d bus messages%s in %.1f s",
                self.name,
                pruned.outbox,
                pruned.inbox,
                pruned.bus,
                f", gathered statistics of {', '.join(pruned.analyzed)}" if pruned.analyzed else "",
                time.monotonic() - started,
            )
        return pruned

    async def _inbox_horizon(self, now: datetime) -> datetime | None:
        """Inbox rows applied before this go; None: keep them all this time."""
        if self.keep_inbox is None or not self.readers:
            return None
        floor = await self.bus.redelivery_floor(
            groups=[reader.group for reader in self.readers],
            topics=sorted({topic for reader in self.readers for topic in reader.topics}),
            patterns=[reader.pattern for reader in self.readers if reader.pattern],
            dead_letter_topic=self.dead_letter_topic,
        )
        if floor is None:
            if not self._kept_for_ever:
                log.warning(
                    "%s keeps its inbox: a topic it reads keeps messages for ever (retention.ms -1 or compaction), "
                    "so any old event could come again; give its topics a retention.ms to let the inbox shrink",
                    self.name,
                )
                self._kept_for_ever = True
            return None
        self._kept_for_ever = False
        return min(now - self.keep_inbox, floor - CLOCK_MARGIN)

    @contextlib.asynccontextmanager
    async def _turn(self) -> AsyncIterator[bool]:
        """On PostgreSQL a session advisory lock: instances of a service take turns instead of deleting twice."""
        if self.engine.dialect.name != "postgresql":
            yield True
            return
        key = zlib.crc32(f"jiesu-housekeeping:{self.name}".encode()) % (2**31)
        async with self.engine.connect() as conn:
            # The two-key form: a keyspace of its own, apart from the relay's and evaluation's one-key locks.
            got = bool((await conn.execute(text("SELECT pg_try_advisory_lock(:k, 0)"), {"k": key})).scalar())
            await conn.commit()
            try:
                yield got
            finally:
                if got:
                    await conn.execute(text("SELECT pg_advisory_unlock(:k, 0)"), {"k": key})
                    await conn.commit()


def days(value: float) -> timedelta | None:
    """A keep setting in days as a span; None for 0 (keep for ever)."""
    return timedelta(days=value) if value > 0 else None

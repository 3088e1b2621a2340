"""Embedded durable bus: an append-only log in a SQL database, committed offsets per consumer group."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Column,
    Index,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    and_,
    case,
    delete,
    exists,
    func,
    literal,
    or_,
    select,
    text,
    union_all,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql import Select

from shared import jsontext
from shared.bus.base import Delivery, OutgoingMessage
from shared.bus.commits import CommitWatch, sqlite_file
from shared.db import BigIntKey, UTCDateTime, insert_rows, reading
from shared.events import CloudEvent, utcnow

metadata = MetaData()
messages = Table(
    "bus_messages",
    metadata,
    Column("position", BigIntKey, primary_key=True, autoincrement=True),
    Column("topic", String(249), nullable=False),
    Column("key", String(128), nullable=True),
    Column("headers", Text, nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("appended_at", UTCDateTime(), nullable=False),
)
Index("ix_bus_messages_topic_position", messages.c.topic, messages.c.position)
offsets = Table(
    "bus_offsets",
    metadata,
    Column("group_id", String(128), primary_key=True),
    Column("topic", String(249), primary_key=True),
    Column("position", BigIntKey, nullable=False),
    Column("committed_at", UTCDateTime(), nullable=False),
)

_APPEND_LOCK_ID = 0x6A696573  # serialises appends on PostgreSQL so positions commit in order
# A watched reader is woken by commits; it still reads this often on its own, in case a wake-up slipped by.
_RESYNC_SECONDS = 5.0


# What a reader reads of a message; not appended_at, whose text would be parsed into a datetime and never used.
_READ = (messages.c.position, messages.c.topic, messages.c.key, messages.c.headers, messages.c.payload)

# The topics that got messages after a position, and their last. NOT INDEXED: with the (topic, position) index at
# hand SQLite groups by walking all of it, the whole bus on every look of the commit watch (2.4 ms at 70,000
# messages, and growing); the rowid range reads the new rows only (``bench/bus_look.py``).
NEW_TOPICS = f"SELECT topic, max(position) FROM {messages.name} NOT INDEXED WHERE position > ? GROUP BY topic"


class EmbeddedBus:
    """A bus whose log lives in a database file; publishing returns after the commit.

    On a SQLite file, readers sleep until a commit watch (PRAGMA data_version, see ``shared.bus.commits``) sees
    new messages on their topics, from this process or another; elsewhere they poll every ``poll_seconds``.
    """

    def __init__(self, engine: AsyncEngine, *, poll_seconds: float = 0.05, watch_seconds: float = 0.02) -> None:
        self.engine = engine
        self.poll_seconds = poll_seconds
        self._appended = asyncio.Condition()
        path = sqlite_file(engine)
        self.watch = CommitWatch(path, slowest=watch_seconds) if path is not None else None
        if self.watch is not None:
            self.watch.probes.append(self._new_messages)
            self.watch.on_error = self._wake_all
        self._readers: set[EmbeddedSubscription] = set()
        self._seen: int | None = None  # the last position the watch has told readers about

    async def start(self) -> None:
        async with self.engine.begin() as conn:
            await conn.run_sync(metadata.create_all)

    async def close(self) -> None:
        if self.watch is not None:
            await self.watch.close()
        await self.engine.dispose()

    async def publish(self, batch: Sequence[OutgoingMessage]) -> None:
        if not batch:
            return
        now = utcnow()
        rows = [
            {
                "topic": m.topic,
                "key": m.key,
                "headers": jsontext.dumps_text([[k, v] for k, v in m.event.attributes()]),
                "payload": m.value(),
                "appended_at": now,
            }
            for m in batch
        ]
        async with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                await conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _APPEND_LOCK_ID})
            await insert_rows(conn, messages, rows)
        if self.watch is not None:
            self.watch.prod()
        async with self._appended:
            self._appended.notify_all()

    def subscribe(self, *, group: str, topics: Sequence[str] = (), pattern: str | None = None) -> EmbeddedSubscription:
        return EmbeddedSubscription(self, group=group, topics=tuple(topics), pattern=pattern)

    async def prune(self, *, before: datetime, held_topics: Sequence[str] = (), batch: int = 5000) -> int:
        """Delete messages appended before ``before`` that no consumer group still has to read; how many went.

        A message stays while any group that has committed on its topic has not committed past it, however old
        (a stopped service finds its backlog when it comes back). On a topic no group has committed on, age alone
        decides, except on ``held_topics`` (the dead letters): those wait for their first reader. Deletes go in
        position windows of ``batch``, one short transaction each, and stop at the first window whose next message
        is not old enough (positions are appended in time order).
        """
        gone = 0
        later = exists().where(offsets.c.topic == messages.c.topic, offsets.c.position < messages.c.position)
        read = exists().where(offsets.c.topic == messages.c.topic)
        condition = and_(messages.c.appended_at < before, ~later)
        if held_topics:
            condition = and_(condition, or_(messages.c.topic.not_in(held_topics), read))
        async with reading(self.engine) as conn:
            low = (await conn.execute(select(func.min(messages.c.position)))).scalar()
        while low is not None:
            high = low + batch
            async with self.engine.begin() as conn:
                result = await conn.execute(
                    delete(messages).where(messages.c.position >= low, messages.c.position < high, condition)
                )
                gone += result.rowcount or 0
                following = (
                    await conn.execute(
                        select(messages.c.position, messages.c.appended_at)
                        .where(messages.c.position >= high)
                        .order_by(messages.c.position)
                        .limit(1)
                    )
                ).first()
            if following is None or following.appended_at >= before:
                break
            low = following.position
            await asyncio.sleep(0)  # let the service's own work in between windows
        return gone

    async def redelivery_floor(
        self,
        *,
        groups: Sequence[str] = (),
        topics: Sequence[str] = (),
        patterns: Sequence[str] = (),
        dead_letter_topic: str,
    ) -> datetime | None:
        """The earliest time at which anything this bus can still deliver to ``groups`` was first published.

        That is the oldest message still kept on the topics the groups read (every topic they have committed on,
        which covers their ``patterns``, and ``topics``), and the original time of every dead letter still kept (a
        re-drive publishes it again). Now, when the bus holds nothing for them.
        """
        found: list[datetime] = [utcnow()]
        async with reading(self.engine) as conn:
            read = await conn.execute(select(offsets.c.topic).where(offsets.c.group_id.in_(groups)).distinct())
            for topic in {*read.scalars(), *topics} - {dead_letter_topic}:
                oldest = await conn.execute(
                    select(messages.c.appended_at)
                    .where(messages.c.topic == topic)
                    .order_by(messages.c.position)
                    .limit(1)
                )
                found.extend(oldest.scalars())
            letters = await conn.execute(
                select(messages.c.payload, messages.c.appended_at).where(messages.c.topic == dead_letter_topic)
            )
            found.extend(_original_time(payload, appended_at) for payload, appended_at in letters)
        return min(found)

    def watching(self, reader: EmbeddedSubscription) -> bool:
        """Register a reader with the commit watch (started on first use); False when there is no watch."""
        if self.watch is None:
            return False
        if not self.watch.running():
            self.watch.start()
        self._readers.add(reader)
        return True

    def forget(self, reader: EmbeddedSubscription) -> None:
        """Stop waking a reader that closed."""
        self._readers.discard(reader)

    async def wait_for_append(self, timeout: float) -> None:
        """Sleep until something is appended in this process, or the timeout passes."""
        async with self._appended:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._appended.wait(), timeout)

    def _new_messages(self, conn: sqlite3.Connection) -> None:
        """Probe run by the watch after a commit: wake the readers of the topics that got messages."""
        if self._seen is None:
            # The first look (or the first after a failed one): readers query for themselves from here.
            self._seen = conn.execute(f"SELECT coalesce(max(position), 0) FROM {messages.name}").fetchall()[0][0]
            for reader in list(self._readers):
                reader.wake()
            return
        found = conn.execute(NEW_TOPICS, (self._seen,)).fetchall()
        if not found:
            return  # an offset commit, or a write to another table
        self._seen = max(position for _, position in found)
        for reader in list(self._readers):
            if any(reader.wants(topic) for topic, _ in found):
                reader.wake()

    def _wake_all(self) -> None:
        self._seen = None  # the next good look starts afresh (and wakes everyone again)
        for reader in list(self._readers):
            reader.wake()


def _original_time(letter: bytes, appended_at: datetime) -> datetime:
    """When the event inside a dead letter was first made (its CloudEvents time), at latest the letter's own."""
    try:
        made = datetime.fromisoformat(json.loads(letter)["event"]["time"])
    except (ValueError, KeyError, TypeError):
        return appended_at  # not a letter this service wrote: its own time is all there is
    return min(made if made.tzinfo is not None else made.replace(tzinfo=UTC), appended_at)


def _pattern_prefix(pattern: str) -> str:
    """The literal prefix of a topic regex, to narrow the SQL scan before the regex filters."""
    body = pattern.removeprefix("^")
    prefix = re.match(r"(?:[^.\\*+?()\[\]{}|^$]|\\.)*", body)
    return re.sub(r"\\(.)", r"\1", prefix.group(0) if prefix else "")


class EmbeddedSubscription:
    """One consumer group reading the embedded log; a group has a single active reader."""

    def __init__(self, bus: EmbeddedBus, *, group: str, topics: tuple[str, ...], pattern: str | None) -> None:
        if not topics and pattern is None:
            raise ValueError("subscribe to topics or a pattern")
        self.bus = bus
        self.group = group
        self.topics = topics
        self.pattern = re.compile(pattern) if pattern else None
        self._cursor: dict[str, int] = {}
        # The last position this reader's query returned: everything up to it was delivered or is not ours, so a
        # reader that commits seldom (or never) does not scan the same rows again and again.
        self._scanned = 0
        self._woken = asyncio.Event()  # set: something may have arrived since the last read
        self._woken.set()
        self._read_at = -_RESYNC_SECONDS
        self.wakeups = 0  # times the commit watch woke this reader for new messages on its topics

    def wants(self, topic: str) -> bool:
        """Whether a topic is one this reader follows."""
        return topic in self.topics or (self.pattern is not None and self.pattern.search(topic) is not None)

    def wake(self) -> None:
        """Called by the commit watch: messages for this reader were committed."""
        self.wakeups += 1
        self._woken.set()

    async def start(self) -> None:
        self._scanned = 0
        self._woken.set()
        async with reading(self.bus.engine) as conn:
            rows = await conn.execute(
                select(offsets.c.topic, offsets.c.position).where(offsets.c.group_id == self.group)
            )
            self._cursor = {topic: position for topic, position in rows}

    def _by_topic(self, max_records: int) -> Select[Any]:
        """The next messages of the topics followed: each topic's own index range, at most ``max_records`` each.

        Asking for all the topics at once (``topic IN (...)``) made SQLite read every waiting message of every topic
        and sort them before the limit, so a reader of several topics paid for its whole backlog on each fetch.
        """
        parts = []
        for topic in self.topics:
            committed = func.coalesce(
                select(offsets.c.position)
                .where(offsets.c.group_id == self.group, offsets.c.topic == topic)
                .scalar_subquery(),
                0,
            )
            seen = literal(max(self._cursor.get(topic, 0), self._scanned))
            # One lower bound, the greater of the two, so that the index range starts there (with two, SQLite may
            # start at the committed position and step over everything read since).
            parts.append(
                select(messages.c.position)
                .where(messages.c.topic == topic)
                .where(messages.c.position > case((committed > seen, committed), else_=seen))
                .order_by(messages.c.position)
                .limit(max_records)
            )
        if len(parts) == 1:
            wanted = parts[0]
        else:  # positions only (the index holds them): the messages themselves are read for those kept alone
            merged = union_all(*(select(part.subquery()) for part in parts)).subquery()
            wanted = select(merged.c.position).order_by(merged.c.position).limit(max_records)
        return select(*_READ).where(messages.c.position.in_(wanted)).order_by(messages.c.position)

    def _by_pattern(self, max_records: int) -> Select[Any]:
        """The next messages of the topics matching the pattern (or named), in the order they were appended."""
        committed = offsets.alias("o")
        return (
            select(*_READ)
            .outerjoin(
                committed,
                and_(committed.c.group_id == literal(self.group), committed.c.topic == messages.c.topic),
            )
            .where(or_(*self._topic_filter()))  # type: ignore[arg-type]
            .where(messages.c.position > func.coalesce(committed.c.position, 0))
            .where(messages.c.position > self._scanned)
            .order_by(messages.c.position)
            .limit(max_records)
        )

    def _topic_filter(self) -> list[object]:
        clauses: list[object] = []
        if self.topics:
            clauses.append(messages.c.topic.in_(self.topics))
        if self.pattern is not None:
            clauses.append(messages.c.topic.like(_pattern_prefix(self.pattern.pattern) + "%"))
        return clauses

    async def fetch(self, *, max_records: int = 200, timeout: float = 1.0) -> list[Delivery]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        watched = self.bus.watching(self)
        while True:
            if not watched or self._woken.is_set() or loop.time() - self._read_at >= _RESYNC_SECONDS:
                # Cleared before the read: a commit the read misses wakes the wait below.
                self._woken.clear()
                found = await self._read(max_records)
                self._read_at = loop.time()
                if found:
                    self._woken.set()  # there may be more than max_records: read again at once next time
                    return found
            remaining = deadline - loop.time()
            if remaining <= 0:
                return []
            if not watched:
                await self.bus.wait_for_append(min(self.bus.poll_seconds, remaining))
                continue
            resync = self._read_at + _RESYNC_SECONDS - loop.time()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._woken.wait(), max(0.0, min(remaining, resync)))

    async def _read(self, max_records: int) -> list[Delivery]:
        query = self._by_topic(max_records) if self.pattern is None else self._by_pattern(max_records)
        async with reading(self.bus.engine) as conn:
            rows = (await conn.execute(query)).all()
        if rows:
            # Positions become visible in order (one writer at a time), so nothing below them can still appear.
            self._scanned = max(self._scanned, rows[-1].position)
        found: list[Delivery] = []
        for row in rows:
            if row.position <= self._cursor.get(row.topic, 0):
                continue
            if self.pattern is not None and not self.pattern.search(row.topic) and row.topic not in self.topics:
                continue
            found.append(
                Delivery(
                    topic=row.topic,
                    partition=0,
                    offset=row.position,
                    key=row.key,
                    event=CloudEvent.from_attributes(dict(jsontext.loads(row.headers)), row.payload),
                )
            )
        for delivery in found:
            self._cursor[delivery.topic] = max(self._cursor.get(delivery.topic, 0), delivery.offset)
        return found

    async def commit(self, deliveries: Sequence[Delivery]) -> None:
        if not deliveries:
            return
        latest: dict[str, int] = {}
        for d in deliveries:
            latest[d.topic] = max(latest.get(d.topic, 0), d.offset)
        now = utcnow()
        async with self.bus.engine.begin() as conn:
            for topic, position in latest.items():
                values = {"group_id": self.group, "topic": topic, "position": position, "committed_at": now}
                upsert = postgresql.insert(offsets) if conn.dialect.name == "postgresql" else sqlite.insert(offsets)
                await conn.execute(
                    upsert.values(**values).on_conflict_do_update(
                        index_elements=[offsets.c.group_id, offsets.c.topic],
                        set_={"position": position, "committed_at": now},
                    )
                )

    async def close(self) -> None:
        self.bus.forget(self)
        self._cursor = {}
        self._scanned = 0

"""Transactional outbox and inbox: events written with the state change, duplicates dropped on receipt."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Column,
    Index,
    LargeBinary,
    MetaData,
    String,
    Table,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from shared import jsontext
from shared.db import BigIntKey, UTCDateTime, WriteBuffer, insert_rows, write_buffer
from shared.events import CloudEvent, utcnow

# On PostgreSQL a transaction that writes outbox rows also notifies this channel; PostgreSQL delivers it when the
# transaction commits (never if it rolls back), so a relay in another process LISTENing on the service's database
# publishes at once instead of at its next poll. Each service has its own database, hence one channel name.
OUTBOX_CHANNEL = "jiesu_outbox"
_NOTIFY = text(f"SELECT pg_notify('{OUTBOX_CHANNEL}', '')")
_ANNOUNCED = "jiesu.outbox_announced"


@dataclass(frozen=True, slots=True)
class MessagingTables:
    """The outbox (events to publish) and inbox (events already consumed) of one service database."""

    outbox: Table
    inbox: Table


def define_messaging_tables(metadata: MetaData) -> MessagingTables:
    """Add the outbox and inbox tables to a service's metadata."""
    outbox = Table(
        "outbox",
        metadata,
        # Debezium-style columns: id, aggregatetype, aggregateid, type, payload; plus what a relay needs.
        Column("seq", BigIntKey, primary_key=True, autoincrement=True),
        Column("id", String(36), nullable=False, unique=True),
        Column("aggregatetype", String(64), nullable=False),
        Column("aggregateid", String(64), nullable=False),
        Column("type", String(128), nullable=False),
        Column("topic", String(249), nullable=False),
        Column("source", String(128), nullable=False),
        Column("subject", String(128), nullable=True),
        Column("event_time", UTCDateTime(), nullable=False),
        Column("payload", LargeBinary, nullable=False),
        Column("created_at", UTCDateTime(), nullable=False),
        Column("published_at", UTCDateTime(), nullable=True),
    )
    Index("ix_outbox_unpublished", outbox.c.published_at, outbox.c.seq)
    inbox = Table(
        "inbox",
        metadata,
        Column("consumer", String(128), primary_key=True),
        Column("event_id", String(64), primary_key=True),
        Column("event_type", String(128), nullable=False),
        Column("processed_at", UTCDateTime(), nullable=False),
    )
    Index("ix_inbox_processed", inbox.c.processed_at)  # housekeeping deletes the oldest first
    return MessagingTables(outbox=outbox, inbox=inbox)


async def add_event(
    session: AsyncSession,
    tables: MessagingTables,
    *,
    topic: str,
    aggregatetype: str,
    aggregateid: str,
    event: CloudEvent,
) -> None:
    """Write an event to the outbox inside the caller's transaction (key = aggregate id)."""
    await add_events(session, tables, [(topic, aggregatetype, aggregateid, event)])


async def add_events(
    session: AsyncSession, tables: MessagingTables, events: list[tuple[str, str, str, CloudEvent]]
) -> None:
    """Write many events (topic, aggregatetype, aggregateid, event) to the outbox in one statement.

    Inside a consumer chunk the rows join the chunk's buffer and are written with it, still before the commit.
    """
    if not events:
        return
    now = utcnow()
    rows = [
        {
            "id": event.id,
            "aggregatetype": aggregatetype,
            "aggregateid": aggregateid,
            "type": event.type,
            "topic": topic,
            "source": event.source,
            "subject": event.subject,
            "event_time": event.time,
            "payload": event.body(),
            "created_at": now,
        }
        for topic, aggregatetype, aggregateid, event in events
    ]
    buffer = write_buffer(session)
    if buffer is not None:
        buffer.add(tables.outbox, rows)
    else:
        await insert_rows(session, tables.outbox, rows)
    await _announce(session, buffer)


async def _announce(session: AsyncSession, buffer: WriteBuffer | None) -> None:
    """Once per transaction on PostgreSQL: wake the relay when this transaction commits."""
    if session.bind is None or session.bind.dialect.name != "postgresql":
        return  # SQLite: the relay's commit watch sees the commit by itself
    transaction = session.get_transaction()
    if transaction is None or session.info.get(_ANNOUNCED) is transaction:
        return
    session.info[_ANNOUNCED] = transaction
    if buffer is not None:
        buffer.then = _NOTIFY.text  # in the same statement as the buffered rows, no round trip of its own
        return
    # On the session's connection, not through the ORM: nothing pending is flushed by it.
    await (await session.connection()).execute(_NOTIFY)


def event_from_row(row: Any, *, with_data: bool = True) -> CloudEvent:
    """Rebuild the CloudEvent stored in an outbox row.

    ``with_data=False`` leaves the data unread (an empty object) for a caller that sends the row's payload as
    written (the relay): parsing it only to drop it again was a twentieth of the dispatch process's time.
    """
    data = jsontext.loads(row.payload) if with_data else {}
    time: datetime = row.event_time
    return CloudEvent(id=row.id, type=row.type, source=row.source, subject=row.subject, time=time, data=data)


def _claim_statement(session: AsyncSession, tables: MessagingTables) -> Any:
    """INSERT .. ON CONFLICT DO NOTHING RETURNING event_id on the inbox, for one row or many.

    The rows go as parameters (not as VALUES of a new statement), so the statement is compiled once and cached,
    and several rows are still sent as one multi-row INSERT.
    """
    return _claim(session.bind.dialect.name if session.bind is not None else "sqlite", tables.inbox)


@functools.cache
def _claim(dialect: str, inbox: Table) -> Any:
    # Built once per dialect and inbox: every consumer chunk claims its events with it.
    upsert = postgresql.insert(inbox) if dialect == "postgresql" else sqlite.insert(inbox)
    return upsert.on_conflict_do_nothing().returning(inbox.c.event_id)


async def claim_event(session: AsyncSession, tables: MessagingTables, *, consumer: str, event: CloudEvent) -> bool:
    """Record that a consumer handles an event; False when it was handled before (a duplicate)."""
    values = {"consumer": consumer, "event_id": event.id, "event_type": event.type, "processed_at": utcnow()}
    result = await (await session.connection()).execute(_claim_statement(session, tables), values)
    return result.first() is not None


async def claim_events(
    session: AsyncSession, tables: MessagingTables, *, consumer: str, events: list[CloudEvent]
) -> set[str]:
    """Record many events in one statement; the ids not handled before (duplicates are left out)."""
    unique = list({event.id: event for event in events}.values())
    if not unique:
        return set()
    now = utcnow()
    values = [{"consumer": consumer, "event_id": e.id, "event_type": e.type, "processed_at": now} for e in unique]
    # On the session's connection: a Core statement gains nothing from the ORM's execute, which costs more.
    connection = await session.connection()
    return set((await connection.execute(_claim_statement(session, tables), values)).scalars())

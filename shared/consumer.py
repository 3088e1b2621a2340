"""Consumer loop: a chunk of events per transaction, duplicates dropped by event id, offsets committed after."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.bus.base import Bus, Delivery, OutgoingMessage, Subscription
from shared.db import buffered_writes, database_unreachable
from shared.events import CloudEvent
from shared.outbox import MessagingTables, claim_event, claim_events

DEAD_LETTER = "jiesu.bus.dead_letter.v1"
UNREADABLE = "jiesu.bus.unreadable.v1"  # what a transport hands over for a message without a valid envelope

log = logging.getLogger("jiesu.consumer")

Handler = Callable[[AsyncSession, CloudEvent], Awaitable[None]]
ChunkHook = Callable[[AsyncSession, Sequence[CloudEvent]], Awaitable[None]]


# How long a consumer off the response path waits to gather a fuller chunk (``ConsumerSpec.gather``).
GATHER_OFF_PATH = 0.1


@dataclass(slots=True)
class ConsumerSpec:
    """What a service consumes: a group, its topics or pattern, and one handler per event type."""

    group: str
    handlers: Mapping[str, Handler]
    topics: Sequence[str] = ()
    pattern: str | None = None
    fallback: Handler | None = None  # for event types without a handler of their own
    batch: int = 50  # deliveries applied in one transaction; a failure falls back to one by one
    max_attempts: int = 5  # then the event goes to the dead-letter topic (when one is set) and the group goes on
    dead_letter_topic: str | None = None
    prepare: ChunkHook | None = None  # reads a chunk's events need, in one query, before the handlers run
    # Offsets are committed at most this often while events flow, and at once when a fetch comes back empty or
    # the consumer stops: what is applied is in the database (inbox included), so a commit that comes later only
    # means more duplicates to drop after a crash, while each commit is a write (an fsync on the embedded bus).
    commit_every: float = 0.2
    # Off the response path a consumer may wait this long after a fetch that did not fill a chunk, so that the next
    # one brings more: a chunk's fixed cost (its transaction, its inbox claim) is shared by more events, for at
    # most this much more lag. Nobody waits on such a consumer's work (a report's mirrored status, evaluation).
    gather: float = 0.0
    processed: int = field(default=0)
    dead_letters: int = field(default=0)


async def handle_delivery(
    delivery: Delivery,
    *,
    spec: ConsumerSpec,
    sessions: async_sessionmaker[AsyncSession],
    tables: MessagingTables,
) -> bool:
    """Apply one delivery in its own transaction; False when it was a duplicate or of no interest."""
    handler = spec.handlers.get(delivery.event.type, spec.fallback)
    if handler is None:
        return False
    async with sessions() as session, session.begin():
        if not await claim_event(session, tables, consumer=spec.group, event=delivery.event):
            return False
        async with buffered_writes(session):
            if spec.prepare is not None:
                await spec.prepare(session, [delivery.event])
            await handler(session, delivery.event)
    return True


async def handle_chunk(
    deliveries: Sequence[Delivery],
    *,
    spec: ConsumerSpec,
    sessions: async_sessionmaker[AsyncSession],
    tables: MessagingTables,
) -> int:
    """Apply several deliveries in one transaction (one commit instead of many); all or nothing.

    The inbox rows of the chunk are one statement, and what the handlers append (outbox, trail, timers,
    roll-ups) is buffered and written in one statement per table before the commit.
    """
    applied = 0
    wanted = [(d.event, h) for d in deliveries if (h := spec.handlers.get(d.event.type, spec.fallback)) is not None]
    if not wanted:
        return 0
    async with sessions() as session, session.begin():
        fresh = await claim_events(session, tables, consumer=spec.group, events=[event for event, _ in wanted])
        async with buffered_writes(session):
            if spec.prepare is not None:
                await spec.prepare(session, [event for event, _ in wanted if event.id in fresh])
            for event, handler in wanted:
                if event.id not in fresh:
                    continue
                fresh.discard(event.id)  # the same event twice in one chunk is applied once
                await handler(session, event)
                applied += 1
    return applied


async def run_consumer(
    bus: Bus,
    spec: ConsumerSpec,
    *,
    sessions: async_sessionmaker[AsyncSession],
    tables: MessagingTables,
    stop: asyncio.Event,
    after_commit: Callable[[], None] | None = None,
) -> None:
    """Consume until stopped; a failing event is retried in place so nothing is skipped."""
    subscription = bus.subscribe(group=spec.group, topics=spec.topics, pattern=spec.pattern)
    delay = 0.2
    while not stop.is_set():
        try:
            await subscription.start()
            break
        except Exception as error:
            log.warning("consumer %s cannot start yet (%s); retrying", spec.group, error)
            await _sleep_or_stop(stop, delay)
            delay = min(delay * 2, 5.0)
    loop = asyncio.get_running_loop()
    uncommitted: dict[tuple[str, int], Delivery] = {}  # the furthest delivery applied per partition
    committed_at = loop.time()
    try:
        while not stop.is_set():
            deliveries = await subscription.fetch(max_records=200, timeout=0.5)
            for delivery in [d for d in deliveries if d.event.type == UNREADABLE]:
                await dead_letter(bus, spec, delivery, error="not a CloudEvents 1.0 message", attempts=0)
            readable = [d for d in deliveries if d.event.type != UNREADABLE]
            for start in range(0, len(readable), spec.batch):
                chunk = readable[start : start + spec.batch]
                try:
                    spec.processed += await handle_chunk(chunk, spec=spec, sessions=sessions, tables=tables)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    # Find the culprit: apply one by one, retrying a failing event in place.
                    for delivery in chunk:
                        await _until_done(delivery, bus=bus, spec=spec, sessions=sessions, tables=tables, stop=stop)
                        if stop.is_set():
                            return
            for delivery in deliveries:
                key = (delivery.topic, delivery.partition)
                if key not in uncommitted or uncommitted[key].offset < delivery.offset:
                    uncommitted[key] = delivery
            if uncommitted and (not deliveries or loop.time() - committed_at >= spec.commit_every):
                done = await _commit(subscription, spec, list(uncommitted.values()))
                uncommitted.clear()  # committed, or to be re-read (a revoked partition must not block the others)
                committed_at = loop.time()
                if done and after_commit is not None:
                    after_commit()
            if spec.gather and 0 < len(deliveries) < spec.batch:
                await _sleep_or_stop(stop, spec.gather)
    finally:
        if uncommitted:
            await _commit(subscription, spec, list(uncommitted.values()), timeout=5.0)
        await subscription.close()


async def _commit(
    subscription: Subscription, spec: ConsumerSpec, deliveries: list[Delivery], *, timeout: float | None = None
) -> bool:
    try:
        await asyncio.wait_for(subscription.commit(deliveries), timeout)
    except asyncio.CancelledError:
        raise
    except Exception as error:
        # Applied but not committed (the broker went away, or a rebalance moved the partitions): they are
        # delivered again and dropped as duplicates by event id.
        log.warning("consumer %s could not commit its offsets (%s); they will be re-read", spec.group, error)
        return False
    return True


async def _until_done(
    delivery: Delivery,
    *,
    bus: Bus,
    spec: ConsumerSpec,
    sessions: async_sessionmaker[AsyncSession],
    tables: MessagingTables,
    stop: asyncio.Event,
    first_delay: float = 0.2,
) -> None:
    delay = first_delay
    attempts = 0
    while not stop.is_set():
        try:
            if await handle_delivery(delivery, spec=spec, sessions=sessions, tables=tables):
                spec.processed += 1
            return
        except asyncio.CancelledError:
            raise
        except Exception as error:
            # A database that is down or restarting is not the event's fault: wait for it, never set the event aside.
            attempts += 0 if database_unreachable(error) else 1
            if spec.dead_letter_topic is not None and attempts >= spec.max_attempts:
                await dead_letter(bus, spec, delivery, error=f"{type(error).__name__}: {error}", attempts=attempts)
                return
            log.exception(
                "consumer %s failed on %s %s (%s@%s), attempt %d; retrying in %.1fs",
                spec.group,
                delivery.event.type,
                delivery.event.id,
                delivery.topic,
                delivery.offset,
                attempts,
                delay,
            )
            await _sleep_or_stop(stop, delay)
            delay = min(delay * 2, 10.0)


async def dead_letter(bus: Bus, spec: ConsumerSpec, delivery: Delivery, *, error: str, attempts: int) -> None:
    """Set an event aside on the dead-letter topic with the error, so the group can go on."""
    assert spec.dead_letter_topic is not None, "no dead-letter topic configured"
    original = delivery.event
    letter = CloudEvent(
        type=DEAD_LETTER,
        source=f"/jiesu/consumer/{spec.group}",
        subject=original.subject,
        data={
            "group": spec.group,
            "topic": delivery.topic,
            "partition": delivery.partition,
            "offset": delivery.offset,
            "key": delivery.key,
            "error": error,
            "attempts": attempts,
            "event": {
                "id": original.id,
                "type": original.type,
                "source": original.source,
                "subject": original.subject,
                "time": original.time.isoformat(),
                "data": original.data,
            },
        },
    )
    await bus.publish([OutgoingMessage(topic=spec.dead_letter_topic, key=delivery.key or original.id, event=letter)])
    spec.dead_letters += 1
    log.error(
        "consumer %s set %s %s (%s@%s) aside on %s after %d attempts: %s",
        spec.group,
        original.type,
        original.id,
        delivery.topic,
        delivery.offset,
        spec.dead_letter_topic,
        attempts,
        error,
    )


async def redrive(bus: Bus, *, dead_letter_topic: str, group: str | None = None, reader: str) -> int:
    """Send set-aside events back to their topics (after a fix); consumers that had them drop duplicates."""
    subscription = bus.subscribe(group=reader, topics=[dead_letter_topic])
    await subscription.start()
    sent = 0
    try:
        while True:
            letters = await subscription.fetch(max_records=200, timeout=2.0)
            if not letters:
                return sent
            batch = []
            for letter in letters:
                data = letter.event.data
                if group is not None and data.get("group") != group:
                    continue
                original = data["event"]
                event = CloudEvent(
                    id=original["id"],
                    type=original["type"],
                    source=original["source"],
                    subject=original.get("subject"),
                    time=datetime.fromisoformat(original["time"]),
                    data=original["data"],
                )
                batch.append(OutgoingMessage(topic=data["topic"], key=data.get("key") or event.id, event=event))
            await bus.publish(batch)
            await subscription.commit(letters)
            sent += len(batch)
    finally:
        await subscription.close()


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)

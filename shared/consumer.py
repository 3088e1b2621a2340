"""Consumer loop: one transaction per event, duplicates dropped by event id, offsets committed after."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.bus.base import Bus, Delivery
from shared.events import CloudEvent
from shared.outbox import MessagingTables, claim_event

log = logging.getLogger("jiesu.consumer")

Handler = Callable[[AsyncSession, CloudEvent], Awaitable[None]]


@dataclass(slots=True)
class ConsumerSpec:
    """What a service consumes: a group, its topics or pattern, and one handler per event type."""

    group: str
    handlers: Mapping[str, Handler]
    topics: Sequence[str] = ()
    pattern: str | None = None
    fallback: Handler | None = None  # for event types without a handler of their own
    batch: int = 50  # deliveries applied in one transaction; a failure falls back to one by one
    processed: int = field(default=0)


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
        await handler(session, delivery.event)
    return True


async def handle_chunk(
    deliveries: Sequence[Delivery],
    *,
    spec: ConsumerSpec,
    sessions: async_sessionmaker[AsyncSession],
    tables: MessagingTables,
) -> int:
    """Apply several deliveries in one transaction (one commit instead of many); all or nothing."""
    applied = 0
    async with sessions() as session, session.begin():
        for delivery in deliveries:
            handler = spec.handlers.get(delivery.event.type, spec.fallback)
            if handler is None:
                continue
            if not await claim_event(session, tables, consumer=spec.group, event=delivery.event):
                continue
            await handler(session, delivery.event)
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
    try:
        while not stop.is_set():
            deliveries = await subscription.fetch(max_records=200, timeout=0.5)
            for start in range(0, len(deliveries), spec.batch):
                chunk = deliveries[start : start + spec.batch]
                try:
                    spec.processed += await handle_chunk(chunk, spec=spec, sessions=sessions, tables=tables)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    # Find the culprit: apply one by one, retrying a failing event in place.
                    for delivery in chunk:
                        await _until_done(delivery, spec=spec, sessions=sessions, tables=tables, stop=stop)
                        if stop.is_set():
                            return
            if deliveries:
                await subscription.commit(deliveries)
                if after_commit is not None:
                    after_commit()
    finally:
        await subscription.close()


async def _until_done(
    delivery: Delivery,
    *,
    spec: ConsumerSpec,
    sessions: async_sessionmaker[AsyncSession],
    tables: MessagingTables,
    stop: asyncio.Event,
) -> None:
    delay = 0.2
    while not stop.is_set():
        try:
            if await handle_delivery(delivery, spec=spec, sessions=sessions, tables=tables):
                spec.processed += 1
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception(
                "consumer %s failed on %s %s (%s@%s); retrying in %.1fs",
                spec.group,
                delivery.event.type,
                delivery.event.id,
                delivery.topic,
                delivery.offset,
                delay,
            )
            await _sleep_or_stop(stop, delay)
            delay = min(delay * 2, 10.0)


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)

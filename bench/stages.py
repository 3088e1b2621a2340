"""Where an event's time goes between the services, read back from their own outbox and inbox tables.

Every event a service emits is an outbox row (``created_at`` when its transaction wrote it, ``published_at`` when
the relay marked it sent, just after the bus took it) and every event a consumer group applies is an inbox row
(``processed_at``) under the same event id. So, for the events of a run:

- relay wait, per service: published_at - created_at (the outbox backlog and the relay's pace; an upper bound,
  since the mark is written after the bus has the event and may itself wait for the database);
- trip, per consumer group: processed_at - created_at (from the producer's commit to the consumer's: the relay,
  the bus, the group's backlog and its pace).

The group with the longest trip is the stage falling behind. Works the same on SQLite and PostgreSQL, either bus.
"""

from __future__ import annotations

from datetime import datetime
from importlib import import_module
from typing import Any

from sqlalchemy import select

from shared.db import create_engine


def percentile(values: list[float], q: float) -> float | None:
    """The nearest-rank ``q`` quantile (the larger value on a tie of ranks), None when there are no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _summary(waits: list[float]) -> dict[str, Any]:
    found = {name: percentile(waits, q) for name, q in (("p50_ms", 0.5), ("p99_ms", 0.99), ("max_ms", 1.0))}
    return {"events": len(waits)} | {name: None if ms is None else round(ms, 1) for name, ms in found.items()}


async def stage_waits(database_urls: dict[str, str], *, since: datetime, until: datetime) -> dict[str, Any]:
    """Relay waits and trips to each consumer group (ms) of the events created between ``since`` and ``until``."""
    written: dict[str, datetime] = {}
    relays: dict[str, list[float]] = {}
    unpublished: dict[str, int] = {}
    applied: list[tuple[str, str, datetime]] = []
    for service, url in database_urls.items():
        tables = import_module(f"services.{service}.models").messaging
        outbox, inbox = tables.outbox, tables.inbox
        engine = create_engine(url, pooled=False)
        try:
            async with engine.connect() as conn:
                rows = await conn.execute(
                    select(outbox.c.id, outbox.c.created_at, outbox.c.published_at).where(
                        outbox.c.created_at >= since, outbox.c.created_at < until
                    )
                )
                waits = relays.setdefault(service, [])
                unpublished[service] = 0
                for event_id, created, sent in rows:
                    written[event_id] = created
                    if sent is None:
                        unpublished[service] += 1
                        continue
                    waits.append((sent - created).total_seconds() * 1000)
                columns = (inbox.c.consumer, inbox.c.event_id, inbox.c.processed_at)
                rows = await conn.execute(select(*columns).where(inbox.c.processed_at >= since))
                applied += [(consumer, event_id, at) for consumer, event_id, at in rows]
        finally:
            await engine.dispose()
    groups: dict[str, list[float]] = {}
    for consumer, event_id, at in applied:
        created = written.get(event_id)
        if created is not None:
            groups.setdefault(consumer, []).append((at - created).total_seconds() * 1000)
    return {
        "relay_wait": {service: _summary(w) for service, w in relays.items()},
        "unpublished_at_end": unpublished,
        "trip_to_consumer": {group: _summary(w) for group, w in sorted(groups.items())},
    }

"""Two relays on one SQLite database (two processes serving it): one publishes, the other takes over when it stops."""

from __future__ import annotations

import asyncio
from pathlib import Path

from services.intake.app import MIGRATIONS
from services.intake.models import messaging
from shared.bus.embedded import EmbeddedBus
from shared.db import create_engine, session_factory
from shared.events import CloudEvent
from shared.migrate import upgrade_async
from shared.outbox import add_event
from shared.relay import OutboxRelay
from tests.helpers import eventually


async def test_one_relay_of_a_sqlite_outbox_publishes_and_the_other_takes_over_when_it_stops(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'intake.db'}"
    await upgrade_async(script_location=MIGRATIONS, database_url=url)
    engines = [create_engine(url) for _ in range(3)]
    bus = EmbeddedBus(create_engine(f"sqlite+aiosqlite:///{tmp_path / 'bus.db'}"))
    await bus.start()
    relays = [OutboxRelay(engine=e, tables=messaging, bus=bus, name="intake", poll_seconds=0.05) for e in engines[:2]]
    stops = [asyncio.Event(), asyncio.Event()]
    running = [asyncio.create_task(r.run(s)) for r, s in zip(relays, stops, strict=True)]
    sessions = session_factory(engines[2])
    reader = bus.subscribe(group="test", topics=["things"])
    events = [CloudEvent(type="jiesu.test.thing.v1", source="/test", data={"n": n}) for n in range(30)]
    got: list[str] = []

    async def store(some: list[CloudEvent]) -> None:
        async with sessions() as session, session.begin():
            for event in some:
                await add_event(session, messaging, topic="things", aggregatetype="t", aggregateid="c", event=event)

    async def received(count: int) -> bool:
        got.extend(d.event.id for d in await reader.fetch(timeout=0.5))
        return len(got) >= count

    try:
        await store(events[:20])
        await eventually(lambda: received(20), timeout=30, what="20 events on the bus")
        await asyncio.sleep(
            0.5
        )  # time for the batch to be marked, and for a second relay to publish copies if it could
        got.extend(d.event.id for d in await reader.fetch(timeout=0.2))
        assert got == [e.id for e in events[:20]], "each event once, in order"
        leader = 0 if relays[0].published else 1
        assert (relays[leader].published, relays[1 - leader].published) == (20, 0), "one relay published"

        stops[leader].set()
        await running[leader]
        await store(events[20:])
        await eventually(lambda: received(30), timeout=30, what="the other relay to take over")
        assert got == [e.id for e in events]

        async def marked() -> bool:  # counted once the bus has the batch and its rows are marked
            return relays[1 - leader].published == 10

        await eventually(marked, timeout=30, what="the ten marked published by the relay that took over")
    finally:
        for stop in stops:
            stop.set()
        await asyncio.gather(*running)
        await reader.close()
        await bus.close()
        for engine in engines:
            await engine.dispose()

"""The outbox relay publishes only what the bus acknowledged; consumers apply each event once."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from services.intake.models import messaging
from shared.bus.base import Delivery, OutgoingMessage
from shared.bus.embedded import EmbeddedBus
from shared.consumer import ConsumerSpec, handle_delivery
from shared.db import create_engine, session_factory
from shared.events import CloudEvent
from shared.outbox import add_event
from shared.relay import OutboxRelay


class RefusingBus:
    """Stands in for a broker that is down: every publish fails, as an unreachable Kafka would."""

    def __init__(self) -> None:
        self.attempts = 0

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def publish(self, messages: Sequence[OutgoingMessage]) -> None:
        self.attempts += 1
        raise ConnectionError("broker unreachable")

    def subscribe(self, **_: object) -> object:
        raise NotImplementedError


async def write_events(engine: AsyncEngine, count: int) -> list[CloudEvent]:
    events = [CloudEvent(type="jiesu.test.thing.v1", source="/test", data={"n": n}) for n in range(count)]
    async with session_factory(engine)() as session, session.begin():
        for e in events:
            await add_event(session, messaging, topic="things", aggregatetype="thing", aggregateid="c1", event=e)
    return events


async def unpublished(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        query = select(func.count()).select_from(messaging.outbox).where(messaging.outbox.c.published_at.is_(None))
        return int((await conn.execute(query)).scalar_one())


async def test_rows_stay_in_the_outbox_until_the_bus_acknowledges(engine: AsyncEngine, tmp_path: object) -> None:
    await write_events(engine, 3)
    refusing = RefusingBus()
    relay = OutboxRelay(engine=engine, tables=messaging, bus=refusing, name="t")  # type: ignore[arg-type]
    with pytest.raises(ConnectionError):
        await relay.publish_once()
    assert refusing.attempts == 1
    assert await unpublished(engine) == 3


async def test_relay_publishes_in_order_and_marks_rows(engine: AsyncEngine, sqlite_url: str) -> None:
    events = await write_events(engine, 5)
    bus = EmbeddedBus(create_engine(sqlite_url.replace("test.db", "bus.db")))
    await bus.start()
    relay = OutboxRelay(engine=engine, tables=messaging, bus=bus, name="t", namespace="ns.")
    assert await relay.publish_once() == 5
    assert await relay.publish_once() == 0
    assert await unpublished(engine) == 0
    sub = bus.subscribe(group="g", topics=["ns.things"])
    await sub.start()
    got = await sub.fetch(timeout=1.0)
    await bus.close()
    assert [d.event.id for d in got] == [e.id for e in events]
    assert all(d.key == "c1" for d in got)


async def test_a_consumer_applies_a_duplicate_event_once(engine: AsyncEngine) -> None:
    applied: list[int] = []

    async def handler(session: AsyncSession, event: CloudEvent) -> None:
        applied.append(event.data["n"])

    spec = ConsumerSpec(group="g", handlers={"jiesu.test.thing.v1": handler}, topics=["things"])
    sessions = session_factory(engine)
    once = CloudEvent(type="jiesu.test.thing.v1", source="/test", data={"n": 7})
    delivery = Delivery(topic="things", partition=0, offset=1, key="c1", event=once)
    first = await handle_delivery(delivery, spec=spec, sessions=sessions, tables=messaging)
    second = await handle_delivery(delivery, spec=spec, sessions=sessions, tables=messaging)
    assert (first, second) == (True, False)
    assert applied == [7]


async def test_a_failing_handler_leaves_no_trace_so_the_retry_applies(engine: AsyncEngine) -> None:
    calls: list[int] = []

    async def flaky(session: AsyncSession, event: CloudEvent) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("bug on first try")

    spec = ConsumerSpec(group="g", handlers={"jiesu.test.thing.v1": flaky}, topics=["things"])
    sessions = session_factory(engine)
    delivery = Delivery(
        topic="things",
        partition=0,
        offset=1,
        key="c1",
        event=CloudEvent(type="jiesu.test.thing.v1", source="/test", data={}),
    )
    with pytest.raises(RuntimeError):
        await handle_delivery(delivery, spec=spec, sessions=sessions, tables=messaging)
    assert await handle_delivery(delivery, spec=spec, sessions=sessions, tables=messaging) is True
    assert len(calls) == 2

"""kill -9 the Kafka broker: the relay keeps no growing buffer meanwhile, and afterwards everything arrives once."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from sqlalchemy.ext.asyncio import AsyncEngine

from services.intake.app import MIGRATIONS
from services.intake.models import messaging
from shared.bus.kafka import KafkaBus
from shared.db import create_engine, session_factory
from shared.events import CloudEvent
from shared.migrate import upgrade_async
from shared.outbox import add_event
from shared.relay import OutboxRelay
from tests.e2e.fleet import SERVICES, Fleet, Load, OwnServer, audit
from tests.helpers import eventually


@pytest.fixture
def broker(tmp_path: Path, kafka_bootstrap: str) -> Iterator[OwnServer]:
    """A Kafka broker of this test's own (the shared one must not be killed)."""
    own = OwnServer("kafka", tmp_path / "broker")
    own.run("start")
    try:
        yield own
    finally:
        own.run("stop")


async def write_events(engine: AsyncEngine, *, topic: str, first: int, count: int) -> list[str]:
    """Commit ``count`` events to the outbox; return their ids."""
    numbers = range(first, first + count)
    events = [CloudEvent(type="jiesu.test.thing.v1", source="/test", data={"n": n}) for n in numbers]
    async with session_factory(engine)() as session, session.begin():
        for event in events:
            await add_event(
                session, messaging, topic=topic, aggregatetype="thing", aggregateid=f"c{event.data['n']}", event=event
            )
    return [event.id for event in events]


async def delivered_ids(bootstrap: str, topic: str, *, expected: int) -> Counter[str]:
    """Every ``ce_id`` on the topic, read from the first offset, with how often each appears."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    seen: Counter[str] = Counter()
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while loop.time() < deadline:
            batches = await consumer.getmany(timeout_ms=1000)
            for records in batches.values():
                for record in records:
                    seen[dict(record.headers)["ce_id"].decode()] += 1
            if sum(seen.values()) >= expected and not batches:
                break
    finally:
        await consumer.stop()
    return seen


async def test_the_relay_drops_a_stuck_producer_and_delivers_each_event_once(
    tmp_path: Path, broker: OwnServer, pg_databases: Callable[[], Awaitable[str]], namespace: str
) -> None:
    url = await pg_databases()
    await upgrade_async(script_location=MIGRATIONS, database_url=url)
    engine = create_engine(url)
    bus = KafkaBus(broker.bootstrap, client_id="relay-under-test", publish_timeout=1.5)
    relay = OutboxRelay(engine=engine, tables=messaging, bus=bus, name=namespace, batch_size=20, poll_seconds=0.1)
    topic = f"{namespace}things"
    stop = asyncio.Event()
    running = asyncio.create_task(relay.run(stop))
    try:
        sent = await write_events(engine, topic=topic, first=0, count=10)
        await eventually(_drained(relay), timeout=30, what="the first events to be published")
        await asyncio.to_thread(broker.run, "kill")
        sent += await write_events(engine, topic=topic, first=10, count=50)
        held: list[int] = []
        loop = asyncio.get_running_loop()
        until = loop.time() + 12  # several publish attempts time out while the broker is away
        while loop.time() < until:
            held.append(bus.buffered_messages())
            await asyncio.sleep(0.1)
        assert bus.producers_abandoned >= 1, "a timed-out publish should have dropped its producer"
        # Never more than one batch held, however many attempts failed: the buffer does not grow with the outage.
        assert max(held) <= relay.batch_size, f"the producer kept {max(held)} messages"
        assert _live_senders() <= 1
        assert await relay.backlog() == 50 and relay.last_error is not None
        await asyncio.to_thread(broker.run, "start")
        await eventually(_drained(relay), timeout=60, what="the outbox to drain once the broker is back")
        assert relay.last_error is None
    finally:
        stop.set()
        await running
        await bus.close()
        await engine.dispose()
    seen = await delivered_ids(broker.bootstrap, topic, expected=len(sent))
    assert set(seen) == set(sent)
    assert [ce_id for ce_id, times in seen.items() if times > 1] == []


def _drained(relay: OutboxRelay) -> Callable[[], Awaitable[bool]]:
    async def probe() -> bool:
        return await relay.backlog() == 0

    return probe


def _live_senders() -> int:
    """aiokafka producers still running a sender task in this process (each holds its own buffer)."""
    return sum(1 for task in asyncio.all_tasks() if "_sender_routine" in repr(task.get_coro()))


async def test_killing_kafka_under_load_loses_and_doubles_nothing(
    tmp_path: Path, broker: OwnServer, pg_databases: Callable[[], Awaitable[str]], namespace: str
) -> None:
    urls = {service: await pg_databases() for service in SERVICES}
    fleet = Fleet(tmp_path, database_urls=urls, kafka=broker.bootstrap, namespace=namespace)
    with fleet.running():
        load = Load(fleet.urls["intake"], rate=10)
        stop = asyncio.Event()
        posting = asyncio.create_task(load.run(stop))
        await eventually(lambda: load.accepted_at_least(20), timeout=60, what="20 reports accepted before the crash")
        await asyncio.to_thread(broker.run, "kill")
        during = len(load.accepted)
        await eventually(lambda: load.accepted_at_least(during + 40), timeout=60, what="intake to go on accepting")
        await asyncio.to_thread(broker.run, "start")
        after = len(load.accepted)
        await eventually(lambda: load.accepted_at_least(after + 20), timeout=60, what="more reports after the restart")
        stop.set()
        await posting
        assert set(load.answers) == {"201"}, f"intake refused while only the broker was down: {load.refusals}"
        result = await audit(fleet.urls, load.accepted)
        assert result["cases"] == len(load.accepted)

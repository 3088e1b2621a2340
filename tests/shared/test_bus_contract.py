"""One contract, every transport: the embedded log (SQLite and PostgreSQL) and the real Kafka broker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from shared.bus.base import Bus, Delivery, OutgoingMessage, Subscription
from shared.bus.embedded import EmbeddedBus
from shared.bus.kafka import KafkaBus
from shared.db import create_engine
from shared.events import CloudEvent


@pytest.fixture(params=["embedded-sqlite", "embedded-postgres", "kafka"])
async def bus(
    request: pytest.FixtureRequest, pg_databases: Callable[[], Awaitable[str]], sqlite_url: str
) -> AsyncIterator[Bus]:
    transport: Bus
    if request.param == "kafka":
        transport = KafkaBus(request.getfixturevalue("kafka_bootstrap"), client_id="contract")
    else:
        url = await pg_databases() if request.param == "embedded-postgres" else sqlite_url
        transport = EmbeddedBus(create_engine(url))
    await transport.start()
    yield transport
    await transport.close()


def event(n: int, case: str) -> CloudEvent:
    return CloudEvent(type="jiesu.test.thing.v1", source="/test", subject=case, data={"n": n, "text": f"第{n}件"})


async def collect(sub: Subscription, count: int, timeout: float = 30.0) -> list[Delivery]:
    got: list[Delivery] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while len(got) < count and loop.time() < deadline:
        got += await sub.fetch(max_records=100, timeout=0.5)
    return got


async def prepared(bus: Bus, *topics: str) -> None:
    if isinstance(bus, KafkaBus):
        await bus.ensure_topics(list(topics))


async def test_published_events_arrive_whole_and_in_order_per_key(bus: Bus, namespace: str) -> None:
    topic = f"{namespace}things"
    await prepared(bus, topic)
    sent = [OutgoingMessage(topic=topic, key=f"case-{i % 2}", event=event(i, f"case-{i % 2}")) for i in range(10)]
    await bus.publish(sent)
    sub = bus.subscribe(group=f"{namespace}g", topics=[topic])
    await sub.start()
    try:
        got = await collect(sub, 10)
    finally:
        await sub.close()
    assert sorted(d.event.id for d in got) == sorted(m.event.id for m in sent)
    by_id = {m.event.id: m.event for m in sent}
    for delivery in got:
        original = by_id[delivery.event.id]
        assert delivery.event.type == original.type
        assert delivery.event.data == original.data
        assert delivery.event.subject == delivery.key
        assert delivery.event.time == original.time
    for key in ("case-0", "case-1"):
        order = [d.event.data["n"] for d in got if d.key == key]
        assert order == sorted(order), f"events of {key} arrived out of order: {order}"


async def test_a_group_resumes_after_its_committed_offset(bus: Bus, namespace: str) -> None:
    topic = f"{namespace}things"
    await prepared(bus, topic)
    await bus.publish([OutgoingMessage(topic=topic, key="c", event=event(i, "c")) for i in range(3)])
    first = bus.subscribe(group=f"{namespace}g", topics=[topic])
    await first.start()
    seen = await collect(first, 3)
    await first.commit(seen)
    await first.close()
    await bus.publish([OutgoingMessage(topic=topic, key="c", event=event(i, "c")) for i in range(3, 5)])
    second = bus.subscribe(group=f"{namespace}g", topics=[topic])
    await second.start()
    try:
        later = await collect(second, 2)
        extra = await second.fetch(timeout=1.0)
    finally:
        await second.close()
    assert [d.event.data["n"] for d in later] == [3, 4]
    assert extra == []


async def test_uncommitted_events_are_delivered_again(bus: Bus, namespace: str) -> None:
    topic = f"{namespace}things"
    await prepared(bus, topic)
    await bus.publish([OutgoingMessage(topic=topic, key="c", event=event(i, "c")) for i in range(3)])
    crashed = bus.subscribe(group=f"{namespace}g", topics=[topic])
    await crashed.start()
    before = await collect(crashed, 3)
    await crashed.close()  # gone before committing, as after a kill
    again = bus.subscribe(group=f"{namespace}g", topics=[topic])
    await again.start()
    try:
        after = await collect(again, 3)
    finally:
        await again.close()
    assert [d.event.id for d in after] == [d.event.id for d in before]


async def test_each_group_gets_every_event(bus: Bus, namespace: str) -> None:
    topic = f"{namespace}things"
    await prepared(bus, topic)
    await bus.publish([OutgoingMessage(topic=topic, key="c", event=event(i, "c")) for i in range(4)])
    counts = []
    for group in ("dispatch", "evaluation"):
        sub = bus.subscribe(group=f"{namespace}{group}", topics=[topic])
        await sub.start()
        try:
            counts.append(len(await collect(sub, 4)))
        finally:
            await sub.close()
    assert counts == [4, 4]


async def test_a_pattern_subscription_reads_every_unit_topic(bus: Bus, namespace: str) -> None:
    units = [f"{namespace}jiesu.dispatch.unit.DEPT-{n}" for n in ("A", "B")]
    await prepared(bus, *units, f"{namespace}other")
    await bus.publish(
        [OutgoingMessage(topic=t, key="c", event=event(i, "c")) for i, t in enumerate(units)]
        + [OutgoingMessage(topic=f"{namespace}other", key="c", event=event(9, "c"))]
    )
    prefix = namespace.replace(".", r"\.")
    sub = bus.subscribe(group=f"{namespace}app", pattern=rf"^{prefix}jiesu\.dispatch\.unit\..*")
    await sub.start()
    try:
        got = await collect(sub, 2)
        extra = await sub.fetch(timeout=1.0)
    finally:
        await sub.close()
    assert sorted(d.topic for d in got) == sorted(units)
    assert extra == []

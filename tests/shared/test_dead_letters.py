"""A message that cannot be applied is set aside with its error, the consumer goes on, and a re-drive applies it."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiokafka import AIOKafkaProducer
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.app import MIGRATIONS
from services.intake.models import messaging
from shared.bus.base import Delivery, OutgoingMessage
from shared.bus.embedded import EmbeddedBus
from shared.bus.kafka import KafkaBus
from shared.consumer import DEAD_LETTER, ConsumerSpec, redrive, run_consumer
from shared.db import create_engine, session_factory
from shared.events import CloudEvent
from shared.migrate import upgrade_async
from tests.helpers import eventually


async def test_a_poison_event_is_set_aside_and_redriven_after_the_fix(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'svc.db'}"
    await upgrade_async(script_location=MIGRATIONS, database_url=url)
    engine = create_engine(url)
    bus = EmbeddedBus(create_engine(f"sqlite+aiosqlite:///{tmp_path / 'bus.db'}"))
    await bus.start()
    applied: list[int] = []
    broken = True

    async def handler(session: AsyncSession, event: CloudEvent) -> None:
        if event.data["n"] == 2 and broken:
            raise ValueError("cannot read field n=2")
        applied.append(event.data["n"])

    spec = ConsumerSpec(
        group="g", handlers={"t.v1": handler}, topics=["things"], max_attempts=2, dead_letter_topic="dead"
    )
    events = [CloudEvent(type="t.v1", source="/test", subject=f"c{n}", data={"n": n}) for n in (1, 2, 3)]
    await bus.publish([OutgoingMessage(topic="things", key=e.subject or "", event=e) for e in events])
    stop = asyncio.Event()
    consuming = asyncio.create_task(
        run_consumer(bus, spec, sessions=session_factory(engine), tables=messaging, stop=stop)
    )

    # A chunk that fails is rolled back and applied again one by one, so count each event once.
    async def went_on() -> bool:
        return list(dict.fromkeys(applied)) == [1, 3] and spec.dead_letters == 1

    await eventually(went_on, what="the consumer to go past the poison event")
    reader = bus.subscribe(group="inspect", topics=["dead"])
    await reader.start()
    [letter] = await reader.fetch(timeout=1.0)
    await reader.close()
    assert letter.event.type == DEAD_LETTER
    assert letter.event.data["error"] == "ValueError: cannot read field n=2"
    assert (letter.event.data["group"], letter.event.data["event"]["id"]) == ("g", events[1].id)
    broken = False
    assert await redrive(bus, dead_letter_topic="dead", reader="redrive") == 1

    async def fixed() -> bool:
        return list(dict.fromkeys(applied)) == [1, 3, 2]

    await eventually(fixed, what="the re-driven event to be applied")
    assert await redrive(bus, dead_letter_topic="dead", reader="redrive") == 0
    stop.set()
    await consuming
    await bus.close()
    await engine.dispose()


async def test_kafka_messages_without_a_readable_envelope_are_set_aside_and_the_group_goes_on(
    tmp_path: Path, kafka_bootstrap: str, namespace: str
) -> None:
    """Written by something that is not jiesu: no headers at all, and a header that is not UTF-8 text."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'svc.db'}"
    await upgrade_async(script_location=MIGRATIONS, database_url=url)
    engine = create_engine(url)
    things, dead = f"{namespace}things", f"{namespace}dead"
    bus = KafkaBus(kafka_bootstrap, client_id="unreadable")
    await bus.start()
    await bus.ensure_topics([things, dead])
    good = CloudEvent(type="t.v1", source="/test", subject="c1", data={"n": 1})
    stranger = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await stranger.start()
    try:
        await stranger.send_and_wait(things, b'{"n": 0}', key=b"c1")
        broken = [(name, value) for name, value in good.headers() if name != "ce_id"] + [("ce_id", b"\xff\xfe")]
        await stranger.send_and_wait(things, good.body(), key=b"c1", headers=broken)
    finally:
        await stranger.stop()
    await bus.publish([OutgoingMessage(topic=things, key="c1", event=good)])
    applied: list[int] = []

    async def handler(session: AsyncSession, event: CloudEvent) -> None:
        applied.append(event.data["n"])

    spec = ConsumerSpec(group=f"{namespace}g", handlers={"t.v1": handler}, topics=[things], dead_letter_topic=dead)
    stop = asyncio.Event()
    consuming = asyncio.create_task(
        run_consumer(bus, spec, sessions=session_factory(engine), tables=messaging, stop=stop)
    )
    try:

        async def went_on() -> bool:
            return applied == [1] and spec.dead_letters == 2

        await eventually(went_on, what="the good event applied after two set aside")
        reader = bus.subscribe(group=f"{namespace}inspect", topics=[dead])
        await reader.start()
        letters: list[Delivery] = []
        async with asyncio.timeout(30):
            while len(letters) < 2:
                letters += await reader.fetch(timeout=1.0)
        await reader.close()
        assert [(letter.event.data["topic"], letter.event.data["offset"]) for letter in letters] == [
            (things, 0),
            (things, 1),
        ]
        assert all(letter.event.data["error"] == "not a CloudEvents 1.0 message" for letter in letters)
    finally:
        stop.set()
        await consuming
        await bus.close()
        await engine.dispose()

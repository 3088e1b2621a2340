"""Readers of SQLite files are woken by other connections' and processes' commits, not by a poll interval."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.intake.app import MIGRATIONS
from services.intake.models import messaging
from shared.bus.base import OutgoingMessage
from shared.bus.embedded import EmbeddedBus, EmbeddedSubscription
from shared.db import create_engine, session_factory
from shared.events import CloudEvent
from shared.migrate import upgrade_async
from shared.outbox import add_event
from shared.relay import OutboxRelay

ROOT = Path(__file__).resolve().parents[2]
NEVER = 3600.0  # a poll interval no test outlives: a delivery can only come from a wake-up


class ObservedRelay(OutboxRelay):
    """A relay that counts its reads of an empty outbox (after one, it sleeps until woken)."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.found_empty = asyncio.Event()

    async def publish_once(self, lock: Any = None) -> int:
        count = await super().publish_once(lock)
        if count == 0:
            self.found_empty.set()
        return count


def message(topic: str, n: int) -> OutgoingMessage:
    event = CloudEvent(type="jiesu.test.thing.v1", source="/test", subject=f"c{n}", data={"n": n})
    return OutgoingMessage(topic=topic, key=f"c{n}", event=event)


async def waiting_reader(bus: EmbeddedBus, topic: str) -> EmbeddedSubscription:
    """A started reader whose first read found nothing, so it now waits for a wake-up."""
    reader = bus.subscribe(group="g", topics=[topic])
    await reader.start()
    assert await reader.fetch(timeout=0.01) == []
    return reader


async def test_a_reader_on_another_connection_is_woken_by_a_publish(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'bus.db'}"
    writer, reader_bus = EmbeddedBus(create_engine(url)), EmbeddedBus(create_engine(url), poll_seconds=NEVER)
    await writer.start()
    try:
        reader = await waiting_reader(reader_bus, "jiesu.unit.U1")
        fetching = asyncio.create_task(reader.fetch(timeout=60))
        await asyncio.sleep(0)  # the reader is inside its wait before the publish
        await writer.publish([message("jiesu.unit.U1", 1)])
        got = await fetching
        assert [d.event.data["n"] for d in got] == [1]
        assert reader.wakeups >= 1, "the commit watch woke the reader"
    finally:
        await writer.close()
        await reader_bus.close()


async def test_a_reader_is_woken_by_a_publish_from_another_process(tmp_path: Path) -> None:
    db = tmp_path / "bus.db"
    reader_bus = EmbeddedBus(create_engine(f"sqlite+aiosqlite:///{db}"), poll_seconds=NEVER)
    await reader_bus.start()
    publisher = textwrap.dedent(
        f"""
        import asyncio
        from shared.bus.base import OutgoingMessage
        from shared.bus.embedded import EmbeddedBus
        from shared.db import create_engine
        from shared.events import CloudEvent

        async def main() -> None:
            bus = EmbeddedBus(create_engine("sqlite+aiosqlite:///{db}"))
            event = CloudEvent(type="jiesu.test.thing.v1", source="/test", subject="c7", data={{"n": 7}})
            await bus.publish([OutgoingMessage(topic="jiesu.unit.U7", key="c7", event=event)])
            await bus.close()

        asyncio.run(main())
        """
    )
    try:
        reader = await waiting_reader(reader_bus, "jiesu.unit.U7")
        fetching = asyncio.create_task(reader.fetch(timeout=120))
        process = await asyncio.create_subprocess_exec(sys.executable, "-c", publisher, cwd=ROOT)
        assert await process.wait() == 0
        got = await fetching
        assert [(d.topic, d.event.data["n"]) for d in got] == [("jiesu.unit.U7", 7)]
        assert reader.wakeups >= 1, "the commit watch woke the reader"
    finally:
        await reader_bus.close()


async def test_a_publish_on_another_topic_does_not_wake_a_reader(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'bus.db'}"
    writer, reader_bus = EmbeddedBus(create_engine(url)), EmbeddedBus(create_engine(url), poll_seconds=NEVER)
    await writer.start()
    try:
        reader = await waiting_reader(reader_bus, "jiesu.unit.U1")
        assert reader_bus.watch is not None
        fetching = asyncio.create_task(reader.fetch(timeout=60))
        looked = asyncio.Event()
        reader_bus.watch.probes.append(lambda _conn: looked.set())  # runs once the watch has seen a commit
        await writer.publish([message("jiesu.unit.U2", 2)])
        await looked.wait()
        assert reader.wakeups == 0, "a message for another topic leaves the reader asleep"
        await writer.publish([message("jiesu.unit.U1", 1)])
        assert [d.event.data["n"] for d in await fetching] == [1]
        assert reader.wakeups >= 1
    finally:
        await writer.close()
        await reader_bus.close()


async def test_a_look_reads_the_new_messages_only_however_long_the_bus_is(tmp_path: Path) -> None:
    """Under load the watch looks hundreds of times a second in every process: a look that walked the whole bus
    (which keeps a week of messages) would cost more with every message kept."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'bus.db'}"
    writer, reader_bus = EmbeddedBus(create_engine(url)), EmbeddedBus(create_engine(url), poll_seconds=NEVER)
    await writer.start()
    try:
        for start in range(0, 30_000, 5_000):  # history on other topics: a look has no reason to read it
            await writer.publish([message(f"jiesu.unit.H{n % 7}", n) for n in range(start, start + 5_000)])
        reader = await waiting_reader(reader_bus, "jiesu.unit.U1")
        watch = reader_bus.watch
        assert watch is not None and watch._conn is not None
        steps = 0

        def count() -> int:
            nonlocal steps
            steps += 1
            return 0

        watch._conn.set_progress_handler(count, 100)  # called every 100 SQLite virtual machine instructions
        fetching = asyncio.create_task(reader.fetch(timeout=60))
        await asyncio.sleep(0)
        await writer.publish([message("jiesu.unit.U1", 1)])
        assert [d.event.data["n"] for d in await fetching] == [1]
        assert watch.changes >= 2, "the watch looked after the publish"
        # A walk over the 30,000 messages' index entries is over 1,000 calls; reading the new rows is a handful.
        assert steps < 20, f"{steps * 100} instructions for looks that had one new message to find"
    finally:
        await writer.close()
        await reader_bus.close()


@asynccontextmanager
async def sleeping_relay(
    service_url: str, bus_path: Path, *, poll_seconds: float = NEVER
) -> AsyncIterator[tuple[ObservedRelay, async_sessionmaker[AsyncSession], EmbeddedSubscription]]:
    """A relay of an intake database (migrated here) that read its empty outbox and now sleeps until woken (its poll
    is an hour unless given); sessions on another connection of that database; a waiting bus reader of "things"."""
    await upgrade_async(script_location=MIGRATIONS, database_url=service_url)
    relay_engine, writer_engine = create_engine(service_url), create_engine(service_url)
    bus = EmbeddedBus(create_engine(f"sqlite+aiosqlite:///{bus_path}"))
    await bus.start()
    relay = ObservedRelay(engine=relay_engine, tables=messaging, bus=bus, name="t", poll_seconds=poll_seconds)
    stop = asyncio.Event()
    relaying = asyncio.create_task(relay.run(stop))
    try:
        reader = await waiting_reader(bus, "things")
        await relay.found_empty.wait()  # then the relay sleeps: only a wake-up makes it read again
        yield relay, session_factory(writer_engine), reader
    finally:
        stop.set()
        await relaying
        await bus.close()
        await relay_engine.dispose()
        await writer_engine.dispose()


async def test_the_relay_is_woken_by_outbox_rows_another_connection_committed(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'intake.db'}"
    async with sleeping_relay(url, tmp_path / "bus.db") as (relay, sessions, reader):
        event = CloudEvent(type="jiesu.test.thing.v1", source="/test", data={"n": 1})
        async with sessions() as session, session.begin():
            await add_event(session, messaging, topic="things", aggregatetype="thing", aggregateid="c1", event=event)
        got = await reader.fetch(timeout=60)
        assert [d.event.id for d in got] == [event.id]
        assert relay.wakeups >= 1, "the commit watch woke the relay"

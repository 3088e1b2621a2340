"""A consumer commits its offsets once per pause in the flow (or per interval), on going idle and on stopping."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from services.intake.app import MIGRATIONS
from services.intake.models import messaging
from shared.bus.base import OutgoingMessage
from shared.bus.embedded import EmbeddedBus, offsets
from shared.consumer import ConsumerSpec, run_consumer
from shared.db import create_engine, session_factory
from shared.events import CloudEvent
from shared.migrate import upgrade_async
from tests.helpers import eventually


@pytest.fixture
async def setting(tmp_path: Path) -> AsyncIterator[tuple[EmbeddedBus, AsyncEngine]]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'svc.db'}"
    await upgrade_async(script_location=MIGRATIONS, database_url=url)
    engine = create_engine(url)
    bus = EmbeddedBus(create_engine(f"sqlite+aiosqlite:///{tmp_path / 'bus.db'}"), poll_seconds=0.01)
    await bus.start()
    yield bus, engine
    await bus.close()
    await engine.dispose()


def things(first: int, count: int) -> list[OutgoingMessage]:
    return [
        OutgoingMessage(
            topic="things", key=f"c{n}", event=CloudEvent(type="t.v1", source="/t", subject=f"c{n}", data={"n": n})
        )
        for n in range(first, first + count)
    ]


async def committed(bus: EmbeddedBus, group: str) -> int | None:
    async with bus.engine.connect() as conn:
        query = select(offsets.c.position).where(offsets.c.group_id == group, offsets.c.topic == "things")
        return (await conn.execute(query)).scalar_one_or_none()


async def last_position(bus: EmbeddedBus) -> int:
    subscription = bus.subscribe(group="inspect", topics=["things"])
    await subscription.start()
    seen = await subscription.fetch(max_records=1000, timeout=1.0)
    await subscription.close()
    return max(d.offset for d in seen)


async def test_a_steady_flow_commits_once_per_interval_and_a_pause_commits_what_was_applied(
    setting: tuple[EmbeddedBus, AsyncEngine],
) -> None:
    bus, engine = setting
    applied: list[int] = []
    commits = 0

    async def handler(session: AsyncSession, event: CloudEvent) -> None:
        applied.append(event.data["n"])

    def counted() -> None:
        nonlocal commits
        commits += 1

    spec = ConsumerSpec(group="g", handlers={"t.v1": handler}, topics=["things"], commit_every=3600)
    stop = asyncio.Event()
    consuming = asyncio.create_task(
        run_consumer(bus, spec, sessions=session_factory(engine), tables=messaging, stop=stop, after_commit=counted)
    )
    try:
        for batch in range(10):  # a batch every 50 ms: every fetch finds something, none comes back empty
            await bus.publish(things(batch * 5, 5))
            await asyncio.sleep(0.05)

        async def all_applied_and_committed() -> bool:
            return len(applied) == 50 and await committed(bus, "g") == await last_position(bus)

        await eventually(all_applied_and_committed, what="the pause after the flow to commit every offset")
        # One commit for the pause (a fetch came back empty), none per fetch while the flow went on.
        assert commits <= 2, commits
    finally:
        stop.set()
        await consuming
    assert sorted(applied) == list(range(50))


async def test_stopping_commits_what_was_applied_and_a_restart_reads_on_from_there(
    setting: tuple[EmbeddedBus, AsyncEngine],
) -> None:
    bus, engine = setting
    applied: list[int] = []

    async def handler(session: AsyncSession, event: CloudEvent) -> None:
        applied.append(event.data["n"])

    def consumer(stop: asyncio.Event) -> asyncio.Task[None]:
        spec = ConsumerSpec(group="g", handlers={"t.v1": handler}, topics=["things"], commit_every=3600)
        return asyncio.create_task(
            run_consumer(bus, spec, sessions=session_factory(engine), tables=messaging, stop=stop)
        )

    def applied_count(count: int) -> Callable[[], Awaitable[bool]]:
        async def reached() -> bool:
            return len(applied) == count

        return reached

    await bus.publish(things(0, 20))
    stop = asyncio.Event()
    first = consumer(stop)
    await eventually(applied_count(20), what="the first twenty events")
    stop.set()
    await first
    assert await committed(bus, "g") == await last_position(bus)
    await bus.publish(things(20, 5))
    again = asyncio.Event()
    second = consumer(again)
    await eventually(applied_count(25), what="the five published while it was stopped")
    await asyncio.sleep(0.3)
    again.set()
    await second
    assert applied == list(range(25)), "nothing re-read after the restart"


async def test_a_consumer_off_the_response_path_gathers_a_trickle_into_fuller_chunks(
    setting: tuple[EmbeddedBus, AsyncEngine],
) -> None:
    bus, engine = setting

    async def chunks_for(topic: str, gather: float) -> list[int]:
        """Publish 40 events 10 ms apart on a topic of their own; the sizes of the chunks a consumer applied."""
        sizes: list[int] = []
        applied: list[int] = []

        async def handler(session: AsyncSession, event: CloudEvent) -> None:
            applied.append(event.data["n"])

        async def prepare(session: AsyncSession, events: Sequence[CloudEvent]) -> None:
            sizes.append(len(events))

        spec = ConsumerSpec(group=topic, handlers={"t.v1": handler}, topics=[topic], prepare=prepare, gather=gather)
        stop = asyncio.Event()
        consuming = asyncio.create_task(
            run_consumer(bus, spec, sessions=session_factory(engine), tables=messaging, stop=stop)
        )
        try:
            for n in range(40):
                event = CloudEvent(type="t.v1", source="/t", subject=f"c{n}", data={"n": n})
                await bus.publish([OutgoingMessage(topic=topic, key=f"c{n}", event=event)])
                await asyncio.sleep(0.01)

            async def all_applied() -> bool:
                return len(applied) == 40

            await eventually(all_applied, what=f"the consumer of {topic} to apply the 40 events")
        finally:
            stop.set()
            await consuming
        assert applied == list(range(40)), "each event once, in order"
        return sizes

    eager = await chunks_for("trickle-eager", gather=0.0)
    gathering = await chunks_for("trickle-gathering", gather=0.2)
    # Without gathering the trickle is applied as it comes; a consumer that gathers waits for fuller chunks.
    assert len(gathering) <= 8, gathering
    assert len(eager) > 2 * len(gathering), (eager, gathering)

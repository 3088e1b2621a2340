"""A reader of the embedded bus that never commits still gets every new message, past any fetch size."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from shared.bus.base import OutgoingMessage
from shared.bus.embedded import EmbeddedBus
from shared.db import create_engine
from shared.events import CloudEvent


def message(topic: str, n: int) -> OutgoingMessage:
    event = CloudEvent(type="jiesu.test.thing.v1", source="/test", subject=f"c{n}", data={"n": n})
    return OutgoingMessage(topic=topic, key=f"c{n}", event=event)


async def test_a_pattern_reader_that_never_commits_reads_on_past_the_fetch_size(tmp_path: Path) -> None:
    bus = EmbeddedBus(create_engine(f"sqlite+aiosqlite:///{tmp_path / 'bus.db'}"), poll_seconds=0.01)
    await bus.start()
    try:
        reader = bus.subscribe(group="watcher", pattern=r"^jiesu\.unit\..*")
        await reader.start()
        seen: list[int] = []
        for round_ in range(3):  # more than one fetch's worth each round, mixed with topics not matched
            batch = [message(f"jiesu.unit.U{n % 3}", round_ * 300 + n) for n in range(300)]
            await bus.publish(batch + [message("jiesu.other", n) for n in range(250)])
            while len(seen) < (round_ + 1) * 300:
                got = await reader.fetch(max_records=120, timeout=1.0)
                assert got, f"the reader stalled after {len(seen)} messages"
                seen += [int(d.event.data["n"]) for d in got]
        assert seen == list(range(900)), "every matching message once, in order"
        assert await reader.fetch(max_records=120, timeout=0.1) == []
    finally:
        await bus.close()


@pytest.fixture(params=["sqlite", "postgres"])
async def bus_url(request: pytest.FixtureRequest, tmp_path: Path, pg_databases: Callable[[], Awaitable[str]]) -> str:
    return await pg_databases() if request.param == "postgres" else f"sqlite+aiosqlite:///{tmp_path / 'bus.db'}"


async def test_a_reader_of_several_topics_gets_each_message_once_in_the_order_appended(bus_url: str) -> None:
    bus = EmbeddedBus(create_engine(bus_url), poll_seconds=0.01)
    await bus.start()
    try:
        # Uneven topics (most on A, few on B) and one not followed, so a fetch's messages come from both topics.
        batch = [message("jiesu.a" if n % 7 else "jiesu.b", n) for n in range(700)]
        batch = [m for pair in zip(batch, [message("jiesu.c", -1)] * 700, strict=True) for m in pair]
        await bus.publish(batch)
        reader = bus.subscribe(group="both", topics=["jiesu.a", "jiesu.b"])
        await reader.start()
        first = await reader.fetch(max_records=50, timeout=1.0)
        assert [int(d.event.data["n"]) for d in first] == list(range(50))
        await reader.commit(first)
        await reader.close()

        again = bus.subscribe(group="both", topics=["jiesu.b", "jiesu.a"])
        await again.start()
        # Before it reads, another reader of the group reads on and commits: it goes on after that commit.
        other = bus.subscribe(group="both", topics=["jiesu.a", "jiesu.b"])
        await other.start()
        await other.commit(await other.fetch(max_records=50, timeout=1.0))
        await other.close()
        seen: list[int] = []
        while got := await again.fetch(max_records=50, timeout=0.2):
            seen += [int(d.event.data["n"]) for d in got]
        assert seen == list(range(100, 700)), "after the last commit, in the order appended, each once"
    finally:
        await bus.close()

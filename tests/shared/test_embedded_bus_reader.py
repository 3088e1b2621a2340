"""A reader of the embedded bus that never commits still gets every new message, past any fetch size."""

from __future__ import annotations

from pathlib import Path

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

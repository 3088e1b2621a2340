"""On PostgreSQL a relay in another process is woken by the commit of outbox rows (LISTEN/NOTIFY), not by a poll."""

from __future__ import annotations

import asyncio
from pathlib import Path

from services.intake.models import messaging
from shared.events import CloudEvent
from shared.outbox import add_event
from tests.shared.test_commit_wakeups import sleeping_relay


def thing(n: int) -> CloudEvent:
    return CloudEvent(type="jiesu.test.thing.v1", source="/test", data={"n": n})


async def test_the_relay_is_woken_by_a_commit_on_postgresql_and_not_by_a_rollback(pg_url: str, tmp_path: Path) -> None:
    async with sleeping_relay(pg_url, tmp_path / "bus.db") as (relay, sessions, reader):
        # Rolled back: PostgreSQL drops the notification with the rows, the relay is not woken.
        async with sessions() as session, session.begin():
            await add_event(session, messaging, topic="things", aggregatetype="t", aggregateid="c0", event=thing(0))
            await session.rollback()
        await asyncio.sleep(0.5)
        assert relay.wakeups == 0

        # Two events in one transaction: one notification at the commit, both published.
        first, second = thing(1), thing(2)
        async with sessions() as session, session.begin():
            await add_event(session, messaging, topic="things", aggregatetype="t", aggregateid="c1", event=first)
            await add_event(session, messaging, topic="things", aggregatetype="t", aggregateid="c2", event=second)
        got = await reader.fetch(timeout=30)
        assert [d.event.id for d in got] == [first.id, second.id]
        assert relay.wakeups == 1

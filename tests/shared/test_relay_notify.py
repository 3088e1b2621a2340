"""On PostgreSQL a relay in another process is woken by the commit of outbox rows (LISTEN/NOTIFY), not by a poll,
and a relay whose leader-lock session ends takes the lock again."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from services.intake.models import messaging
from shared.events import CloudEvent
from shared.outbox import add_event
from tests.helpers import eventually
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


async def test_a_relay_whose_lock_session_ends_takes_the_lock_again_and_publishes_everything(
    pg_url: str, tmp_path: Path
) -> None:
    """The leader reads and marks on the connection holding its lock, so a failure there is a lost lock."""
    admin = await asyncpg.connect(make_url(pg_url).set(drivername="postgresql").render_as_string(hide_password=False))
    holder = "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND database = " + (
        "(SELECT oid FROM pg_database WHERE datname = current_database())"
    )
    try:
        async with sleeping_relay(pg_url, tmp_path / "bus.db", poll_seconds=0.2) as (relay, sessions, reader):
            sent = [thing(n) for n in range(3)]
            async with sessions() as session, session.begin():
                await add_event(session, messaging, topic="things", aggregatetype="t", aggregateid="c0", event=sent[0])
            assert [d.event.id for d in await reader.fetch(timeout=30)] == [sent[0].id]

            def published(count: int) -> Callable[[], Awaitable[bool | None]]:
                async def marked() -> bool | None:  # a batch counts once the bus has it and its rows are marked
                    return (relay.published == count and relay.failing_since is None) or None

                return marked

            await eventually(published(1), what="the first event marked published")
            first = await eventually(lambda: admin.fetchval(holder), what="the relay's lock")

            assert await admin.fetchval("SELECT pg_terminate_backend($1)", first)
            async with sessions() as session, session.begin():
                for n in (1, 2):
                    key = f"c{n}"
                    await add_event(
                        session, messaging, topic="things", aggregatetype="t", aggregateid=key, event=sent[n]
                    )
            got = []
            while len(got) < 2:
                got += [d.event.id for d in await reader.fetch(timeout=30)]
            assert got == [sent[1].id, sent[2].id]
            second = await admin.fetchval(holder)
            assert second is not None and second != first, "a new session holds the lock"
            # Marked and counted once each (publishing again clears the failure readiness reports), and no copy
            # of an event follows: what the old session had marked was not published again.
            await eventually(published(3), what="the other two marked published, the failure cleared")
            assert await reader.fetch(timeout=1.0) == []
    finally:
        await admin.close()

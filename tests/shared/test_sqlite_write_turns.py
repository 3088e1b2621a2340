"""SQLite writers of one process take turns in arrival order, and a turn is given back however a transaction ends."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import PendingRollbackError
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db import create_engine, reading


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    made = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'turns.db'}")
    async with made.begin() as conn:
        await conn.execute(text("create table log (n integer primary key autoincrement, who text)"))
    yield made
    await made.dispose()


async def logged(engine: AsyncEngine) -> list[str]:
    async with reading(engine) as conn:
        return [row.who for row in await conn.execute(text("select who from log order by n"))]


async def holding_a_write(engine: AsyncEngine, who: str) -> tuple[asyncio.Task[None], asyncio.Event]:
    """A write transaction that has written ``who`` and stays open until the returned event is set."""
    release = asyncio.Event()
    holding = asyncio.Event()

    async def hold() -> None:
        async with engine.begin() as conn:
            await conn.execute(text("insert into log (who) values (:who)"), {"who": who})
            holding.set()
            await release.wait()

    task = asyncio.create_task(hold())
    await holding.wait()
    return task, release


async def test_writers_queued_behind_an_open_transaction_start_in_arrival_order(engine: AsyncEngine) -> None:
    async def writer(name: str) -> None:
        async with engine.begin() as conn:
            await conn.execute(text("insert into log (who) values (:who)"), {"who": name})

    holder, release = await holding_a_write(engine, "first")
    queued = []
    for name in ("b", "c", "d", "e"):
        queued.append(asyncio.create_task(writer(name)))
        await asyncio.sleep(0.01)  # each reaches its turn's queue before the next starts
    # A reader is not held up by the open write transaction.
    assert await asyncio.wait_for(logged(engine), 5) == []
    assert not any(task.done() for task in queued)
    release.set()
    await asyncio.wait_for(asyncio.gather(holder, *queued), 10)
    assert await logged(engine) == ["first", "b", "c", "d", "e"]


async def test_a_failed_transaction_gives_its_turn_back(engine: AsyncEngine) -> None:
    with pytest.raises(RuntimeError, match="handler bug"):
        async with engine.begin() as conn:
            await conn.execute(text("insert into log (who) values ('rolled back')"))
            raise RuntimeError("handler bug")
    with pytest.raises(Exception, match="no such table"):
        async with engine.begin() as conn:
            await conn.execute(text("insert into missing (who) values ('x')"))
    async with asyncio.timeout(5), engine.begin() as conn:
        await conn.execute(text("insert into log (who) values ('next')"))
    assert await logged(engine) == ["next"]


async def test_a_connection_invalidated_mid_transaction_gives_its_turn_back(engine: AsyncEngine) -> None:
    conn = await engine.connect()
    try:
        transaction = await conn.begin()
        await conn.execute(text("insert into log (who) values ('lost')"))
        await conn.invalidate()  # the database connection is gone; no commit or rollback reaches the file
        async with asyncio.timeout(5), engine.begin() as other:
            await other.execute(text("insert into log (who) values ('after')"))
    finally:
        with contextlib.suppress(PendingRollbackError):  # what closing a connection in this state says
            await transaction.rollback()
            await conn.close()
    assert await logged(engine) == ["after"]


async def test_writers_of_every_engine_on_one_file_queue_in_one_line(engine: AsyncEngine, tmp_path: Path) -> None:
    # A service has several engines on its file (requests, consumers, the relay). Were the other engine's writers
    # left to SQLite's busy handler, they would sleep in growing steps and the next writer of the first engine
    # would overtake them the moment the file is free.
    other = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'turns.db'}")
    try:
        holder, release = await holding_a_write(engine, "held")

        async def writer(on: AsyncEngine, name: str) -> None:
            async with on.begin() as conn:
                await conn.execute(text("insert into log (who) values (:who)"), {"who": name})

        queued = []
        for on, name in ((other, "b"), (engine, "c"), (other, "d"), (engine, "e")):
            queued.append(asyncio.create_task(writer(on, name)))
            await asyncio.sleep(0.05)
        assert not any(task.done() for task in queued)
        release.set()
        await asyncio.wait_for(asyncio.gather(holder, *queued), 10)
        assert await logged(engine) == ["held", "b", "c", "d", "e"]
    finally:
        await other.dispose()

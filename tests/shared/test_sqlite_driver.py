"""The SQLite driver: statements on the event loop, waits for the lock or the disk off it; transactions as before."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import IntegrityError

from shared.db import create_engine, reading


async def test_a_writer_waiting_for_another_process_lock_leaves_the_event_loop_running(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"))
        other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)  # another process's writer
        other.execute("BEGIN IMMEDIATE")
        other.execute("INSERT INTO t (v) VALUES ('theirs')")

        async def write() -> None:
            async with engine.begin() as conn:
                await conn.execute(text("INSERT INTO t (v) VALUES ('ours')"))

        tries: list[int] = []  # the threads that sent BEGIN IMMEDIATE, one entry a try

        def traced(dbapi_connection: Any, _record: Any) -> None:
            def trace(statement: str) -> None:
                if statement.startswith("BEGIN IMMEDIATE"):
                    tries.append(threading.get_ident())

            dbapi_connection.driver_connection._conn.set_trace_callback(trace)

        event.listen(engine.sync_engine, "connect", traced)
        await engine.dispose()  # connections from here on are traced

        writing = asyncio.create_task(write())
        loop = asyncio.get_running_loop()
        began = loop.time()
        for _ in range(20):  # 0.5 s of the loop's own work while the lock stays taken
            await asyncio.sleep(0.025)
        assert loop.time() - began < 5, "the event loop was held while the writer waited for the lock"
        assert not writing.done(), "the write waits for the lock (a frozen loop would have seen it time out)"
        waited = len(tries)
        await asyncio.to_thread(other.execute, "COMMIT")
        await asyncio.wait_for(writing, 10)
        # It tried again in short steps, from the loop, rather than sleeping in SQLite's busy handler (whose steps
        # grow to 100 ms, so a lock freed just after one began is taken up to 100 ms late).
        assert waited > 50, f"{waited} tries in 0.5 s of waiting"
        assert set(tries) == {threading.get_ident()}
        other.close()
        async with reading(engine) as conn:
            values = (await conn.execute(text("SELECT v FROM t ORDER BY id"))).scalars().all()
        assert values == ["theirs", "ours"]
    finally:
        await engine.dispose()


async def test_statements_run_on_the_event_loop_thread_and_transactions_keep_their_meaning(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'one.db'}")
    seen: list[int] = []
    try:
        async with engine.begin() as conn:
            raw = await conn.get_raw_connection()
            sqlite = raw.driver_connection._conn  # type: ignore[union-attr]
            sqlite.create_function("whose_thread", 0, lambda: seen.append(threading.get_ident()) or 1)
            await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT UNIQUE)"))
            await conn.execute(text("INSERT INTO t (v) VALUES ('a')"))
            assert (await conn.execute(text("SELECT whose_thread()"))).scalar() == 1
        assert seen == [threading.get_ident()], "the statement ran on the event loop's thread"
        with pytest.raises(IntegrityError):
            async with engine.begin() as conn:
                await conn.execute(text("INSERT INTO t (v) VALUES ('b')"))
                await conn.execute(text("INSERT INTO t (v) VALUES ('a')"))
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO t (v) VALUES ('c')"))
            await conn.rollback()
        async with reading(engine) as conn:
            assert (await conn.execute(text("SELECT v FROM t ORDER BY id"))).scalars().all() == ["a"]
    finally:
        await engine.dispose()
    with sqlite3.connect(tmp_path / "one.db") as db:  # what was committed is on disk for another connection
        assert db.execute("SELECT count(*) FROM t").fetchone() == (1,)


async def test_results_come_back_whole_whether_the_statement_ran_here_or_on_the_thread(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'one.db'}")
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"))
            await conn.execute(text("INSERT INTO t (v) VALUES (:v)"), [{"v": f"v{n}"} for n in range(500)])
            assert (await conn.execute(text("INSERT INTO t (v) VALUES ('last')"))).lastrowid == 501
            assert (await conn.execute(text("UPDATE t SET v = v || '!' WHERE id <= 10"))).rowcount == 10
            rows = await conn.execute(text("SELECT id, v FROM t ORDER BY id"))
            assert rows.fetchmany(2) == [(1, "v0!"), (2, "v1!")]
            rest = rows.fetchall()
            assert len(rest) == 499 and rest[-1] == (501, "last")
            # A PRAGMA goes to the connection's thread; its rows still come back.
            assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
    finally:
        await engine.dispose()

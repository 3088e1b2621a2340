"""What one SQLite statement costs through the async engine: aiosqlite as shipped, and the project's driver.

    uv run python -m bench.sqlite_driver
    uv run python -m bench.sqlite_driver --statements 20000

Opens a SQLite file in WAL mode through ``shared.db.create_engine`` (the project's driver: statements on the event
loop, commits on aiosqlite's thread) and through a plain ``create_async_engine`` with the same pragmas (aiosqlite:
every call on its thread), then times a primary-key ``SELECT`` and a one-row write transaction (``BEGIN
IMMEDIATE``, ``INSERT``, ``COMMIT`` with ``synchronous=FULL``). CPU time of the whole process (every thread) and
wall time, per statement or per transaction.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bench.loadgen import say
from shared.db import _sqlite_pragmas, create_engine


async def _time(engine: AsyncEngine, statements: int) -> dict[str, float]:
    async with engine.begin() as connection:
        await connection.execute(text("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT)"))
        await connection.execute(text("INSERT OR IGNORE INTO t VALUES (1, 'x')"))
    figures: dict[str, float] = {}
    async with engine.connect() as connection:
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(statements):
            (await connection.execute(text("SELECT v FROM t WHERE id = :id"), {"id": 1})).all()
        figures["select_cpu_us"] = round((time.process_time() - cpu) / statements * 1e6, 1)
        figures["select_wall_us"] = round((time.perf_counter() - wall) / statements * 1e6, 1)
    writes = max(1, statements // 10)
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(writes):
        async with engine.begin() as connection:
            await connection.execute(text("INSERT INTO t (v) VALUES ('y')"))
    figures["write_transaction_cpu_us"] = round((time.process_time() - cpu) / writes * 1e6, 1)
    figures["write_transaction_wall_us"] = round((time.perf_counter() - wall) / writes * 1e6, 1)
    return figures


async def run(statements: int) -> dict[str, Any]:
    """Both drivers on fresh files, the project's first."""
    found: dict[str, Any] = {"statements": statements}
    with tempfile.TemporaryDirectory(prefix="jiesu-sqlite-") as folder:
        ours = create_engine(f"sqlite+aiosqlite:///{Path(folder) / 'ours.db'}")
        shipped = create_async_engine(f"sqlite+aiosqlite:///{Path(folder) / 'shipped.db'}")
        event.listen(shipped.sync_engine, "connect", _sqlite_pragmas)

        @event.listens_for(shipped.sync_engine, "begin")
        def _immediate(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        for name, engine in (("project driver", ours), ("aiosqlite", shipped)):
            say(f"timing {name}")
            try:
                found[name] = await _time(engine, statements)
            finally:
                await engine.dispose()
            say(f"  {found[name]}")
    return found


def main() -> None:
    """Parse arguments, run, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--statements", type=int, default=10_000, help="SELECTs timed (and a tenth as many writes)")
    print(json.dumps(asyncio.run(run(parser.parse_args().statements)), indent=1))


if __name__ == "__main__":
    main()

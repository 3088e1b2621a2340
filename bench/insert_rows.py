"""What a multi-row insert of plain rows costs on SQLite: SQLAlchemy's insert against ``shared.db.insert_rows``.

    uv run python -m bench.insert_rows
    uv run python -m bench.insert_rows --rows 200 --statements 200 --rounds 3

A dispatch consumer chunk ends with one insert per table of the rows it buffered (outbox events, trail entries,
timers, cases, tasks), and a relay appends a batch of messages to the embedded bus. For the outbox (ten columns,
two timestamps, a binary payload) and the bus's messages (five columns), the bench inserts the same kind of rows
both ways, alternating round by round in one database, and reports the process's CPU time per row (SQLite's own
work included).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Table, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from bench.loadgen import say
from services.dispatch.models import Base, messaging
from shared.bus.embedded import messages
from shared.bus.embedded import metadata as bus_metadata
from shared.db import create_engine, insert_rows
from shared.events import utcnow


def outbox_rows(count: int) -> list[dict[str, Any]]:
    now = utcnow()
    case = str(uuid.uuid4())
    return [
        {
            "id": str(uuid.uuid4()),
            "aggregatetype": "case",
            "aggregateid": case,
            "type": "jiesu.dispatch.case.assigned.v1",
            "topic": "jiesu.dispatch.unit.U01",
            "source": "/jiesu/dispatch",
            "subject": case,
            "event_time": now,
            "payload": b'{"case_id":"' + case.encode() + b'","unit":"U01","text":"' + b"x" * 300 + b'"}',
            "created_at": now,
        }
        for _ in range(count)
    ]


def message_rows(count: int) -> list[dict[str, Any]]:
    now = utcnow()
    headers = '[["ce_specversion","1.0"],["ce_id","%s"],["ce_type","jiesu.dispatch.case.assigned.v1"]]'
    return [
        {
            "topic": "jiesu.dispatch.unit.U01",
            "key": str(uuid.uuid4()),
            "headers": headers % uuid.uuid4(),
            "payload": b'{"unit":"U01","text":"' + b"x" * 300 + b'"}',
            "appended_at": now,
        }
        for _ in range(count)
    ]


Way = Callable[[AsyncConnection, Table, list[dict[str, Any]]], Awaitable[Any]]


async def _sqlalchemy(conn: AsyncConnection, table: Table, rows: list[dict[str, Any]]) -> None:
    await conn.execute(insert(table), rows)


WAYS: dict[str, Way] = {"sqlalchemy_insert": _sqlalchemy, "insert_rows": insert_rows}


async def run(rows: int, statements: int, rounds: int) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="jiesu-insert-") as folder:
        engine = create_engine(f"sqlite+aiosqlite:///{Path(folder) / 'dispatch.db'}")
        try:
            async with engine.begin() as conn:
                await conn.run_sync(Base.metadata.create_all)
                await conn.run_sync(bus_metadata.create_all)
            for table, make in ((messaging.outbox, outbox_rows), (messages, message_rows)):
                spent: dict[str, list[float]] = {name: [] for name in WAYS}
                for round_ in range(rounds):
                    for name, way in WAYS.items():
                        batches = [make(rows) for _ in range(statements)]  # made outside the timing
                        cpu = 0.0
                        for batch in batches:
                            async with engine.begin() as conn:
                                began = time.process_time()
                                await way(conn, table, batch)
                                cpu += time.process_time() - began
                        spent[name].append(round(cpu / (rows * statements) * 1e6, 2))
                    say(f"{table.name}: round {round_ + 1} of {rounds}: { ({k: v[-1] for k, v in spent.items()}) }")
                results.append({"table": table.name, "rows_per_statement": rows, "cpu_us_per_row": spent})
        finally:
            await engine.dispose()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200, help="rows per statement (a consumer chunk's)")
    parser.add_argument("--statements", type=int, default=100, help="statements per way and round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.rows, args.statements, args.rounds)), indent=1))


if __name__ == "__main__":
    main()

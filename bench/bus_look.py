"""What one look of the embedded bus's commit watch costs as the bus grows.

    uv run python -m bench.bus_look
    uv run python -m bench.bus_look --sizes 10000 100000 500000

Under load every process's commit watch looks at ``bus.db`` after each commit it notices (hundreds of times a
second) and asks which topics got messages since the last look. The bus keeps a week of messages
(``KEEP_BUS_DAYS``), so that question must cost the same at 10,000 messages as at 500,000. For each size the bench
fills a bus file (``EmbeddedBus.publish``, 13 topics), appends one message, and times the watch's question as
``shared/bus/embedded.py`` asks it and, for comparison, the same query left to SQLite's choice of plan (which
walks the whole ``(topic, position)`` index).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.loadgen import say
from shared.bus.base import OutgoingMessage
from shared.bus.embedded import NEW_TOPICS, EmbeddedBus
from shared.db import create_engine
from shared.events import CloudEvent

PLANNER = NEW_TOPICS.replace(" NOT INDEXED", "")
TOPICS = [f"jiesu.dispatch.unit.U{n}" for n in range(12)] + ["jiesu.dispatch.cases"]


def _message(n: int) -> OutgoingMessage:
    event = CloudEvent(type="jiesu.bench.thing.v1", source="/bench", subject=f"c{n}", data={"n": n, "text": "x" * 200})
    return OutgoingMessage(topic=TOPICS[n % len(TOPICS)], key=f"c{n}", event=event)


def _per_look_us(conn: sqlite3.Connection, query: str, after: int, looks: int) -> float:
    began = time.perf_counter()
    for _ in range(looks):
        conn.execute(query, (after,)).fetchall()
    return round((time.perf_counter() - began) / looks * 1e6, 1)


async def run(sizes: list[int]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="jiesu-bus-") as folder:
        path = Path(folder) / "bus.db"
        bus = EmbeddedBus(create_engine(f"sqlite+aiosqlite:///{path}"))
        await bus.start()
        held = 0
        try:
            for size in sorted(sizes):
                while held < size:
                    step = min(5_000, size - held)
                    await bus.publish([_message(n) for n in range(held, held + step)])
                    held += step
                say(f"bus of {held:,} messages: one more, then the watch's look")
                await bus.publish([_message(held)])
                held += 1
                conn = sqlite3.connect(path)
                try:
                    last = held - 1  # the position the previous look saw: one new message to find
                    rows.append(
                        {
                            "messages": held,
                            "look_us": _per_look_us(conn, NEW_TOPICS, last, 2_000),
                            "planner_look_us": _per_look_us(conn, PLANNER, last, 20),
                        }
                    )
                finally:
                    conn.close()
                say(f"  {rows[-1]}")
        finally:
            await bus.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 500_000])
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.sizes)), indent=1))


if __name__ == "__main__":
    main()

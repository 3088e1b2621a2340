"""What housekeeping costs: how fast it deletes, and how long the service's own writes wait meanwhile.

    uv run python -m bench.retention                                   # SQLite service database
    uv run python -m bench.retention --rows 1000000 --database "$(scripts/postgres.sh url)"

Fills a fresh intake database with ``--rows`` published outbox rows and as many inbox rows, all past their keep,
and an embedded bus (SQLite) with ``--rows`` messages every group has read, plus a tenth as many of each that are
still recent. Then a writer applies events at ``--rate`` per second as a consumer would (an inbox claim and an
outbox row per transaction), first alone for a few seconds, then while housekeeping runs until a run finds nothing
left to delete (the inbox goes in the run after the bus let its messages go). It reports each run's time and rows
per second, and the writer's commit latency alone and during the runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.loadgen import say
from bench.scratch import drop_databases, scratch_database
from bench.stages import percentile
from services.intake.app import MIGRATIONS
from services.intake.models import messaging
from shared import topics
from shared.bus.embedded import EmbeddedBus, messages, offsets
from shared.db import create_engine, session_factory
from shared.events import CloudEvent, utcnow
from shared.ids import time_ordered_id
from shared.migrate import upgrade_async
from shared.outbox import add_events, claim_events
from shared.retention import BATCH, Housekeeping, Reader

CHUNK = 5_000
TOPIC = topics.REPORTS
PAYLOAD = json.dumps({"case_id": "x" * 36, "content": "路灯坏了不亮" * 8, "street_code": "S01"}).encode()


async def fill(url: str, bus: EmbeddedBus, rows: int) -> None:
    """Old rows everywhere (past every keep), and a tenth as many recent ones that must stay."""
    await upgrade_async(script_location=MIGRATIONS, database_url=url)
    engine = create_engine(url)
    now = utcnow()
    began = time.monotonic()
    try:
        for age, count in ((timedelta(days=40), rows), (timedelta(hours=1), rows // 10)):
            at = now - age
            for start in range(0, count, CHUNK):
                size = min(CHUNK, count - start)
                ids = [time_ordered_id() for _ in range(size)]
                outbox = [
                    {
                        "id": i,
                        "aggregatetype": "report",
                        "aggregateid": i,
                        "type": "jiesu.intake.report.received.v1",
                        "topic": TOPIC,
                        "source": "/jiesu/intake",
                        "subject": i,
                        "event_time": at,
                        "payload": PAYLOAD,
                        "created_at": at,
                        "published_at": at,
                    }
                    for i in ids
                ]
                inbox = [
                    {"consumer": "intake-status", "event_id": i, "event_type": "t", "processed_at": at} for i in ids
                ]
                log = [{"topic": TOPIC, "key": i, "headers": "[]", "payload": PAYLOAD, "appended_at": at} for i in ids]
                async with engine.begin() as conn:
                    await conn.execute(insert(messaging.outbox), outbox)
                    await conn.execute(insert(messaging.inbox), inbox)
                async with bus.engine.begin() as conn:
                    await conn.execute(insert(messages), log)
                if (start // CHUNK) % 20 == 19:
                    say(f"  {start + CHUNK:,} of {count:,} rows of each stored ({time.monotonic() - began:.0f}s)")
        async with bus.engine.begin() as conn:  # every group has read everything
            last = (await conn.execute(text("SELECT max(position) FROM bus_messages"))).scalar()
            await conn.execute(
                insert(offsets), [{"group_id": "g", "topic": TOPIC, "position": last, "committed_at": now}]
            )
        if make_url(url).get_backend_name() == "postgresql":
            async with engine.connect() as conn:
                autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
                await autocommit.execute(text("VACUUM ANALYZE outbox"))
                await autocommit.execute(text("VACUUM ANALYZE inbox"))
    finally:
        await engine.dispose()


async def write(engine: AsyncEngine, rate: float, stop: asyncio.Event) -> list[float]:
    """Apply one event per transaction at ``rate`` per second until stopped; each commit's latency in seconds."""
    sessions = session_factory(engine)
    latencies: list[float] = []
    loop = asyncio.get_running_loop()
    due = loop.time()
    while not stop.is_set():
        event = CloudEvent(type="jiesu.bench.applied.v1", source="/bench", data={"n": len(latencies)})
        began = time.perf_counter()
        async with sessions() as session, session.begin():
            await claim_events(session, messaging, consumer="bench", events=[event])
            await add_events(session, messaging, [(TOPIC, "report", event.id, event)])
        latencies.append(time.perf_counter() - began)
        due += 1 / rate
        await asyncio.sleep(max(0.0, due - loop.time()))
    return latencies


def summary(latencies: list[float]) -> dict[str, float]:
    return {
        "commits": len(latencies),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round((percentile(latencies, 0.99) or 0.0) * 1000, 2),
        "max_ms": round(max(latencies) * 1000, 2),
    }


async def measure(url: str, bus: EmbeddedBus, rate: float, batch: int) -> dict[str, Any]:
    """The writer alone for 5 s, then during housekeeping runs until one finds nothing to delete.

    Writer and housekeeping share one engine, as in a service: on SQLite they queue for the same write turn.
    """
    engine = create_engine(url)
    keeping = Housekeeping(
        name="intake",
        engine=engine,
        tables=messaging,
        bus=bus,
        readers=[Reader("g", (TOPIC,))],
        dead_letter_topic="jiesu.dead-letters",
        keep_published=timedelta(days=7),
        keep_inbox=timedelta(days=30),
        keep_bus=timedelta(days=7),
        every=600,
        batch=batch,
    )
    try:
        stop = asyncio.Event()
        writer = asyncio.create_task(write(engine, rate, stop))
        await asyncio.sleep(5)
        stop.set()
        alone = await writer
        stop = asyncio.Event()
        writer = asyncio.create_task(write(engine, rate, stop))
        await asyncio.sleep(1)
        runs = []
        try:
            while True:
                began = time.monotonic()
                pruned = await keeping.run_once()
                took = time.monotonic() - began
                deleted = pruned.outbox + pruned.inbox + pruned.bus
                runs.append(
                    {
                        "deleted": {"outbox": pruned.outbox, "inbox": pruned.inbox, "bus": pruned.bus},
                        "seconds": round(took, 2),
                        "rows_per_second": round(deleted / took),
                    }
                )
                say(f"  run {len(runs)}: {runs[-1]}")
                if not deleted:
                    break
        finally:
            stop.set()
            during = await writer
    finally:
        await engine.dispose()
    return {"runs": runs, "writer_alone": summary(alone), "writer_during_housekeeping": summary(during)}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="jiesu-retention-") as folder:
        url = await scratch_database(args.database, "intake", Path(folder), prefix="jiesu_retention")
        bus = EmbeddedBus(create_engine(f"sqlite+aiosqlite:///{Path(folder) / 'bus.db'}"))
        await bus.start()
        try:
            say(f"storing {args.rows:,} old and {args.rows // 10:,} recent rows in the outbox, inbox and bus")
            await fill(url, bus, args.rows)
            say(f"writing {args.rate:g} events/s alone for 5 s, then during one housekeeping run")
            found = await measure(url, bus, args.rate, args.batch)
        finally:
            await bus.close()
            if args.database:
                await drop_databases(args.database, [url])
    return {
        "rows": args.rows,
        "rate": args.rate,
        "batch": args.batch,
        "database": make_url(url).get_backend_name(),
        **found,
    }


def main() -> None:
    """Parse arguments, run, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=300_000, help="old rows of each kind to delete")
    parser.add_argument("--rate", type=float, default=200.0, help="events the writer applies per second")
    parser.add_argument("--batch", type=int, default=BATCH, help="rows a delete transaction takes at most")
    parser.add_argument("--database", help="PostgreSQL server URL to make a database on (default: SQLite)")
    print(json.dumps(asyncio.run(run(parser.parse_args())), indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()

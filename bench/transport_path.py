"""CPU per event of the transport path, hop by hop: outbox write, relay publish, consumer read and apply.

    uv run python -m bench.transport_path --events 20000
    uv run python -m bench.transport_path --events 20000 --database postgresql+asyncpg://jiesu:jiesu@127.0.0.1:55432/jiesu
    uv run python -m bench.transport_path --events 20000 --kafka $(scripts/kafka.sh bootstrap)
    uv run python -m bench.transport_path --events 20000 --profile relay   # cProfile's top functions of one hop

Each hop runs alone over all the events, with the real code: ``add_events`` in transactions of ``--chunk``
events (as a consumer chunk or intake's group commit writes them), ``OutboxRelay.publish_once`` until the outbox
is empty (embedded bus on its own SQLite file, or Kafka), and ``run_consumer`` with an inbox in a second service
database and a handler that does nothing, until every event was applied and its offset committed. The figure is
process CPU (user + system) per event; the wall time is printed beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import MetaData, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from bench.procstat import timed
from bench.scratch import drop_databases, scratch_database
from shared.bus.base import Bus
from shared.bus.embedded import EmbeddedBus
from shared.bus.kafka import KafkaBus
from shared.consumer import ConsumerSpec, run_consumer
from shared.db import create_engine, session_factory
from shared.events import CloudEvent
from shared.outbox import MessagingTables, add_events, define_messaging_tables
from shared.relay import OutboxRelay

EVENT_TYPE = "jiesu.intake.report.received.v1"
HOPS = ("outbox", "relay", "consume")


@dataclass
class HopResult:
    """What one hop cost."""

    hop: str
    events: int
    cpu: float
    wall: float

    def line(self) -> str:
        per = self.cpu / self.events * 1e6
        return f"{self.hop:<8} {self.events:>7} events  {per:8.1f} µs CPU/event  {self.wall:7.2f} s wall"


def sample_event(index: int) -> CloudEvent:
    """A report.received event shaped like intake's (a few fields, Chinese free text, a location)."""
    case_id = f"C{index:09d}"
    return CloudEvent(
        type=EVENT_TYPE,
        source="/jiesu/intake",
        subject=case_id,
        data={
            "case_id": case_id,
            "report_id": str(uuid.UUID(int=index)),
            "channel": "app",
            "category_hint": "道路破损",
            "description": f"人行道地砖松动，行人容易绊倒，请尽快处理。编号 {index}",
            "address": "朝阳区建国路 88 号",
            "location": {"lat": 39.9 + index % 100 / 1e4, "lon": 116.4 + index % 70 / 1e4},
            "reported_at": "2026-11-26T08:00:00+08:00",
            "reporter": {"anonymous": index % 3 == 0, "phone_hash": f"{index:064x}"},
            "attachments": [],
        },
    )


async def _measure(
    hop: str, events: int, work: Callable[[], Awaitable[None]], *, profile: bool, sort: str
) -> HopResult:
    spent = await timed(work, profile_sort=sort if profile else None, lines=30)
    if spent.profile is not None:
        print(spent.profile)
    result = HopResult(hop, events, spent.cpu, spent.wall)
    return result


async def _service_db(url: str) -> tuple[AsyncEngine, MessagingTables]:
    metadata = MetaData()
    tables = define_messaging_tables(metadata)
    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    return engine, tables


async def run(args: argparse.Namespace) -> list[HopResult]:
    """Run the three hops once and return their costs."""
    folder = Path(tempfile.mkdtemp(prefix="jiesu-transport-"))
    names = ("producer", "consumer")
    urls = [await scratch_database(args.database, name, folder, prefix="jiesu_transport") for name in names]
    producer_engine, producer_tables = await _service_db(urls[0])
    consumer_engine, consumer_tables = await _service_db(urls[1])
    bus: Bus
    if args.kafka:
        bus = KafkaBus(args.kafka, client_id="jiesu-transport-bench")
    else:
        bus = EmbeddedBus(create_engine(f"sqlite+aiosqlite:///{folder / 'bus.db'}", pool_size=5))
    await bus.start()
    topic = f"jiesu.bench.transport.{uuid.uuid4().hex[:8]}"
    events = [sample_event(i) for i in range(args.events)]
    results: list[HopResult] = []
    try:
        sessions = session_factory(producer_engine)

        async def write_outbox() -> None:
            for start in range(0, len(events), args.chunk):
                chunk = events[start : start + args.chunk]
                async with sessions() as session, session.begin():
                    await add_events(session, producer_tables, [(topic, "case", e.subject or "", e) for e in chunk])

        relay = OutboxRelay(engine=producer_engine, tables=producer_tables, bus=bus, name="bench")

        async def publish() -> None:
            while await relay.publish_once():
                pass

        spec = ConsumerSpec(group=f"bench-{uuid.uuid4().hex[:8]}", handlers={EVENT_TYPE: _ignore}, topics=[topic])
        stop = asyncio.Event()

        def committed() -> None:
            if spec.processed >= len(events):
                stop.set()

        async def consume() -> None:
            await run_consumer(
                bus,
                spec,
                sessions=session_factory(consumer_engine),
                tables=consumer_tables,
                stop=stop,
                after_commit=committed,
            )

        if isinstance(bus, KafkaBus):
            await bus.ensure_topics([topic])
        for hop, work in (("outbox", write_outbox), ("relay", publish), ("consume", consume)):
            results.append(await _measure(hop, len(events), work, profile=args.profile == hop, sort=args.sort))
        await _check(producer_engine, producer_tables, consumer_engine, consumer_tables, len(events))
    finally:
        await bus.close()
        await producer_engine.dispose()
        await consumer_engine.dispose()
        if args.database is not None:
            await drop_databases(args.database, urls)
        shutil.rmtree(folder, ignore_errors=True)
    return results


async def _ignore(session: AsyncSession, event: CloudEvent) -> None:
    """A handler that applies nothing: what remains is the framework's own cost."""


async def _check(
    producer: AsyncEngine, producer_tables: MessagingTables, consumer: AsyncEngine, tables: MessagingTables, n: int
) -> None:
    outbox = producer_tables.outbox
    async with producer.connect() as conn:
        waiting = (await conn.execute(select(func.count()).where(outbox.c.published_at.is_(None)))).scalar_one()
    async with consumer.connect() as conn:
        seen = (await conn.execute(select(func.count()).select_from(tables.inbox))).scalar_one()
    if waiting or seen != n:
        raise SystemExit(f"lost events: {waiting} unpublished, {seen} of {n} in the inbox")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--chunk", type=int, default=50, help="events per outbox transaction")
    parser.add_argument("--database", help="PostgreSQL URL (a fresh database per service is made and dropped)")
    parser.add_argument("--kafka", help="Kafka bootstrap servers; the embedded bus otherwise")
    parser.add_argument("--profile", choices=HOPS, help="print cProfile's top functions of this hop")
    parser.add_argument("--sort", default="tottime", help="cProfile order: tottime, cumulative, ...")
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    for _ in range(args.runs):
        results = asyncio.run(run(args))
        for result in results:
            print(result.line())
        total = sum(r.cpu for r in results) / args.events * 1e6
        print(f"{'total':<8} {args.events:>7} events  {total:8.1f} µs CPU/event")


if __name__ == "__main__":
    main()

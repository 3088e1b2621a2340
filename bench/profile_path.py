"""Cost per report of the report path, service by service: SQL statements, commits and CPU time.

    uv run python -m bench.profile_path --reports 500
    uv run python -m bench.profile_path --reports 500 --database postgresql+asyncpg://jiesu:jiesu@127.0.0.1:55432/jiesu
    uv run python -m bench.profile_path --reports 500 --profile dispatch   # cProfile's top functions as well
    uv run python -m bench.profile_path --reports 500 --chunk 1            # consumers' chunks of one event

Intake accepts the reports one request (transaction) at a time, then 64 concurrent requests at a time through
the group commit, then as one batch; dispatch judges the
``report.received`` events intake wrote, in consumer chunks exactly as its consumer applies them; evaluation
applies the case events dispatch wrote and the received events. Statements are counted on the engine's cursor.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.corpus import Corpus
from bench.procstat import timed
from bench.scratch import drop_databases, scratch_database
from services.dispatch.consumers import consumer_specs as dispatch_specs
from services.dispatch.context import DispatchContext
from services.dispatch.models import messaging as dispatch_messaging
from services.dispatch.settings import DispatchSettings
from services.evaluation.consumers import consumer_specs as evaluation_specs
from services.evaluation.models import messaging as evaluation_messaging
from services.intake import service as intake
from services.intake.group_commit import GroupCommit, Storing
from services.intake.models import messaging as intake_messaging
from services.intake.schemas import ReportCreate
from services.intake.settings import IntakeSettings
from services.registry import SERVICES
from shared import topics
from shared.bus.base import Delivery
from shared.consumer import ConsumerSpec, handle_chunk
from shared.db import create_engine, session_factory
from shared.events import CloudEvent
from shared.migrate import upgrade_async
from shared.outbox import MessagingTables, event_from_row


@dataclass
class Meter:
    """Statements and commits seen on one engine."""

    statements: int = 0
    commits: int = 0
    kinds: dict[str, int] = field(default_factory=dict)

    def attach(self, engine: AsyncEngine) -> None:
        """Count every statement and commit the engine runs."""

        def on_execute(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            self.statements += 1
            word = " ".join(statement.split()[:3])[:40]
            self.kinds[word] = self.kinds.get(word, 0) + 1

        def on_commit(_conn: Any) -> None:
            self.commits += 1

        event.listen(engine.sync_engine, "before_cursor_execute", on_execute)
        event.listen(engine.sync_engine, "commit", on_commit)

    def reset(self) -> None:
        """Start counting afresh."""
        self.statements = self.commits = 0
        self.kinds = {}


async def _outbox(engine: AsyncEngine, tables: MessagingTables, topic: str) -> list[CloudEvent]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(tables.outbox).where(tables.outbox.c.topic == topic).order_by("seq"))
        return [event_from_row(row) for row in rows]


def _deliveries(events: list[CloudEvent], topic: str) -> list[Delivery]:
    return [Delivery(topic=topic, partition=0, offset=i, key=e.subject, event=e) for i, e in enumerate(events)]


async def _measure(
    label: str, count: int, meter: Meter, work: Callable[[], Awaitable[None]], profile: bool
) -> dict[str, Any]:
    meter.reset()
    # Each step starts from a collected heap: a full collection of the earlier steps' garbage, landing in whichever
    # step happens to cross the threshold, would be charged to that step's reports (the services freeze their
    # start-up heap for the same reason).
    gc.collect()
    spent = await timed(work, profile_sort="cumulative" if profile else None, lines=40)
    wall, cpu = spent.wall, spent.cpu
    result = {
        "step": label,
        "items": count,
        "statements_per_item": round(meter.statements / count, 2),
        "commits_per_item": round(meter.commits / count, 3),
        "cpu_ms_per_item": round(cpu * 1000 / count, 3),
        "wall_ms_per_item": round(wall * 1000 / count, 3),
        "statements": dict(sorted(meter.kinds.items(), key=lambda kv: -kv[1])[:8]),
    }
    if spent.profile is not None:
        result["profile"] = spent.profile
    return result


def _sized(spec: ConsumerSpec, chunk: int | None) -> ConsumerSpec:
    return spec if chunk is None else replace(spec, batch=chunk)


async def _chunks(deliveries: list[Delivery], spec: ConsumerSpec, engine: AsyncEngine, tables: MessagingTables) -> None:
    sessions = session_factory(engine)
    for start in range(0, len(deliveries), spec.batch):
        await handle_chunk(deliveries[start : start + spec.batch], spec=spec, sessions=sessions, tables=tables)


async def run(
    *, reports: int, database: str | None, profile: set[str], chunk: int | None = None
) -> list[dict[str, Any]]:
    """Run the three steps and return their costs; ``chunk`` overrides the consumers' chunk size."""
    folder = Path(tempfile.mkdtemp(prefix="jiesu-profile-"))
    urls = {name: await scratch_database(database, name, folder, prefix="jiesu_profile") for name in SERVICES}
    for name, spec in SERVICES.items():
        await upgrade_async(script_location=spec.migrations, database_url=urls[name])
    engines = {name: create_engine(url) for name, url in urls.items()}
    meters = {name: Meter() for name in SERVICES}
    for name, engine in engines.items():
        meters[name].attach(engine)
    corpus = Corpus()
    bodies = [ReportCreate.model_validate(corpus.report()) for _ in range(reports * 2)]
    tz = ZoneInfo("Asia/Shanghai")
    results = []
    intake_sessions = session_factory(engines["intake"])
    personal_data = IntakeSettings(database_url=urls["intake"]).personal_data()

    async def singles() -> None:
        for body in bodies[:reports]:
            async with intake_sessions() as session, session.begin():
                if await intake.find_by_external_id(session, source=body.source, external_id=body.external_id):
                    raise AssertionError("duplicate external id in the corpus")
                await intake.accept_reports(session, [body], number_prefix="P", tz=tz, personal_data=personal_data)

    async def batch() -> None:
        for start in range(reports, 2 * reports, 1000):
            chunk = bodies[start : start + 1000]
            async with intake_sessions() as session, session.begin():
                await intake.find_many(session, [(b.source, b.external_id) for b in chunk])
                await intake.accept_reports(session, chunk, number_prefix="P", tz=tz, personal_data=personal_data)

    grouped = [ReportCreate.model_validate(corpus.report()) for _ in range(reports)]
    how = Storing(number_prefix="G", tz=tz, personal_data=personal_data)
    committer = GroupCommit(intake_sessions, how)

    async def concurrent() -> None:
        for start in range(0, reports, 64):  # 64 clients at a time, as the load generator's closed loop
            await asyncio.gather(*(committer.submit(body) for body in grouped[start : start + 64]))

    results.append(await _measure("intake: single report", reports, meters["intake"], singles, "intake" in profile))
    results.append(
        await _measure(
            "intake: 64 concurrent singles (group commit)", reports, meters["intake"], concurrent, "intake" in profile
        )
    )
    results.append(await _measure("intake: batch of 1,000", reports, meters["intake"], batch, "intake" in profile))
    received = (await _outbox(engines["intake"], intake_messaging, topics.REPORTS))[:reports]
    ctx = DispatchContext.load(DispatchSettings(database_url=urls["dispatch"]))
    judge_spec = _sized(dispatch_specs("", ctx)[0], chunk)
    judged = _deliveries(received, topics.REPORTS)
    results.append(
        await _measure(
            "dispatch: judge a report",
            reports,
            meters["dispatch"],
            lambda: _chunks(judged, judge_spec, engines["dispatch"], dispatch_messaging),
            "dispatch" in profile,
        )
    )
    case_events = await _outbox(engines["dispatch"], dispatch_messaging, topics.CASES)
    cases_spec, reports_spec = (_sized(spec, chunk) for spec in evaluation_specs("", tz))
    results.append(
        await _measure(
            f"evaluation: case events ({len(case_events) / reports:.1f} per report)",
            reports,
            meters["evaluation"],
            lambda: _chunks(
                _deliveries(case_events, topics.CASES), cases_spec, engines["evaluation"], evaluation_messaging
            ),
            "evaluation" in profile,
        )
    )
    results.append(
        await _measure(
            "evaluation: report.received",
            reports,
            meters["evaluation"],
            lambda: _chunks(judged, reports_spec, engines["evaluation"], evaluation_messaging),
            "evaluation" in profile,
        )
    )
    for engine in engines.values():
        await engine.dispose()
    if database is not None:
        await drop_databases(database, list(urls.values()))
    return results


def main() -> None:
    """Parse arguments, run, print a table and the JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reports", type=int, default=500)
    parser.add_argument("--database", help="a PostgreSQL URL (a fresh database per service is made there)")
    parser.add_argument("--profile", action="append", default=[], choices=["intake", "dispatch", "evaluation"])
    parser.add_argument(
        "--chunk", type=int, help="consumer chunks of this many events (default: each consumer's own chunk size)"
    )
    args = parser.parse_args()
    if args.chunk is not None and args.chunk < 1:
        parser.error("--chunk must be at least 1")
    results = asyncio.run(
        run(reports=args.reports, database=args.database, profile=set(args.profile), chunk=args.chunk)
    )
    print(f"{'step':48} {'stmts':>7} {'commits':>8} {'CPU ms':>8} {'wall ms':>8}  (per report)")
    for row in results:
        print(
            f"{row['step']:48} {row['statements_per_item']:7} {row['commits_per_item']:8} "
            f"{row['cpu_ms_per_item']:8} {row['wall_ms_per_item']:8}"
        )
    for row in results:
        print(row["step"], json.dumps(row["statements"], ensure_ascii=False))
        if "profile" in row:
            print(row["profile"])


if __name__ == "__main__":
    main()

"""How long a page of `GET /v1/cases` takes when dispatch holds many cases (the query the route runs).

    uv run python -m bench.case_list                                   # 300,000 cases in SQLite
    uv run python -m bench.case_list --cases 300000 --database "$(scripts/postgres.sh url)"
    uv run python -m bench.case_list --without-received-index            # the same with the listing index dropped
    uv run python -m bench.case_list --without-statistics                # SQLite without the planner's statistics

Fills a fresh dispatch database with synthetic cases (received over 180 days, a fifth of them open, 50 units,
20 streets, 40 kinds), gathers SQLite's planner statistics as a running service's housekeeping does (unless
``--without-statistics``; PostgreSQL's come from VACUUM ANALYZE), then times `service.list_cases` for the filters
a dashboard and a unit's app use: the first page (50) and a page further on, median of five, wall time in-process.
The count of matching cases is part of every page (the route returns it), so it is part of the time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert, text
from sqlalchemy.engine import make_url

from bench.loadgen import say
from bench.scratch import drop_databases, scratch_database
from services.dispatch import api_scope, service
from services.dispatch.app import MIGRATIONS
from services.dispatch.duplicates import OPEN
from services.dispatch.models import Case, CaseTask
from shared.auth import Principal
from shared.db import create_engine, session_factory
from shared.migrate import upgrade_async
from shared.retention import refresh_statistics

CLOSED = ("closed", "completed", "merged")
CHUNK = 5_000


def case_row(
    case_id: str, *, number: str, unit: str, street: str, kind: str | None, status: str, received_at: datetime
) -> dict[str, Any]:
    """A judged and dispatched case's row, every required column set (the tests' cases are made the same way)."""
    return {
        "id": case_id,
        "case_number": number,
        "source": "hotline",
        "content": "路灯不亮",
        "urgency": "normal",
        "decision": "dispatch",
        "kind_code": kind,
        "street_code": street,
        "primary_unit": unit,
        "status": status,
        "requested_departments": [],
        "judge_reasons": [],
        "cooperating_units": [],
        "deadline_basis": {},
        "returns": [],
        "merged_cases": [],
        "reopen_count": 0,
        "received_at": received_at,
        "updated_at": received_at,
    }


def _case(n: int, now: datetime, rng: random.Random) -> dict[str, Any]:
    return case_row(
        str(uuid.uuid4()),
        number=f"B{n:012d}",
        unit=f"U{rng.randrange(50):02d}",
        street=f"S{rng.randrange(20):02d}",
        kind=f"K{rng.randrange(40):03d}",
        status=rng.choice(OPEN) if rng.random() < 0.2 else rng.choice(CLOSED),
        received_at=now - timedelta(seconds=rng.uniform(0, 180 * 86_400)),
    )


async def fill(url: str, count: int) -> None:
    """Migrate and fill a fresh dispatch database with ``count`` cases (and a cooperating task on 1 in 20)."""
    await upgrade_async(script_location=MIGRATIONS, database_url=url)
    engine = create_engine(url)
    rng = random.Random(7)
    now = datetime.now(UTC)
    began = time.monotonic()
    try:
        for start in range(0, count, CHUNK):
            rows = [_case(n, now, rng) for n in range(start, min(count, start + CHUNK))]
            tasks = [
                {"case_id": r["id"], "unit_code": f"U{rng.randrange(50):02d}", "role": "cooperating"}
                | {"status": "assigned"}
                for r in rows
                if rng.random() < 0.05
            ]
            async with engine.begin() as connection:
                await connection.execute(insert(Case.__table__), rows)  # type: ignore[arg-type]
                if tasks:
                    await connection.execute(insert(CaseTask.__table__), tasks)  # type: ignore[arg-type]
            if (start // CHUNK) % 20 == 19:
                say(f"  {start + CHUNK:,} cases stored ({time.monotonic() - began:.0f}s)")
        if make_url(url).get_backend_name() == "postgresql":
            async with engine.connect() as connection:
                await (await connection.execution_options(isolation_level="AUTOCOMMIT")).execute(
                    text("VACUUM ANALYZE cases")
                )
    finally:
        await engine.dispose()


async def measure(url: str, *, drop_received: bool, planner_statistics: bool = True) -> dict[str, Any]:
    """Median wall time of a page for each filter."""
    engine = create_engine(url)
    if planner_statistics:
        await refresh_statistics(engine)
    unit = Principal(credential_id="bench", role="unit", units=("U07",))
    cases: dict[str, dict[str, Any]] = {
        "everything": {},
        "open": {"status": list(OPEN)},
        "one unit (filter)": {"unit": "U07"},
        "one street, open": {"street": "S03", "status": list(OPEN)},
        "one kind": {"kind": "K011"},
    }
    found: dict[str, Any] = {}
    try:
        if drop_received:
            async with engine.begin() as connection:
                await connection.execute(text("DROP INDEX IF EXISTS ix_cases_received"))
        factory = session_factory(engine)
        for name, filters in [*cases.items(), ("a unit's own (its app)", {"visible": unit})]:
            for offset in (0, 1000):
                times = []
                for _ in range(5):
                    async with factory() as session, session.begin():
                        began = time.perf_counter()
                        if "visible" in filters:
                            _, total = await api_scope.list_visible(
                                session,
                                filters["visible"],
                                status=[],
                                unit=None,
                                kind=None,
                                street=None,
                                source=None,
                                limit=50,
                                offset=offset,
                            )
                        else:
                            arguments: dict[str, Any] = {"status": [], "unit": None, "kind": None, "street": None}
                            arguments |= filters
                            _, total = await service.list_cases(
                                session, **arguments, source=None, limit=50, offset=offset
                            )
                        times.append(time.perf_counter() - began)
                found[f"{name}, offset {offset}"] = {
                    "ms": round(statistics.median(times) * 1000, 1),
                    "matching": total,
                }
                say(f"  {name}, offset {offset}: {found[f'{name}, offset {offset}']}")
    finally:
        await engine.dispose()
    return found


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """A fresh database (a temporary SQLite file, or one made on the PostgreSQL server given), filled, measured."""
    with tempfile.TemporaryDirectory(prefix="jiesu-cases-") as folder:
        url = await scratch_database(args.database, "dispatch", Path(folder), prefix="jiesu_cases")
        try:
            say(f"storing {args.cases:,} cases")
            await fill(url, args.cases)
            say("timing pages of 50" + (" without ix_cases_received" if args.without_received_index else ""))
            pages = await measure(
                url, drop_received=args.without_received_index, planner_statistics=not args.without_statistics
            )
        finally:
            if args.database:
                await drop_databases(args.database, [url])
    return {
        "cases": args.cases,
        "database": make_url(url).get_backend_name(),
        "statistics": not args.without_statistics,
        "pages": pages,
    }


def main() -> None:
    """Parse arguments, run, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=300_000, help="cases stored before timing")
    parser.add_argument("--database", help="PostgreSQL server URL to make a database on (default: SQLite)")
    parser.add_argument("--without-received-index", action="store_true", help="drop ix_cases_received before timing")
    parser.add_argument("--without-statistics", action="store_true", help="SQLite: time without planner statistics")
    print(json.dumps(asyncio.run(run(parser.parse_args())), indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()

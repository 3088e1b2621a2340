"""How long the duplicate search (合并) of one judging chunk takes as the open cases in its window grow.

    uv run python -m bench.duplicate_search                                  # 1,000 to 100,000 open cases, SQLite
    uv run python -m bench.duplicate_search --open 1000 10000 --database "$(scripts/postgres.sh url)"

Fills a fresh dispatch database step by step with open cases received over the last 70 hours (inside the 72-hour
window): 60 kinds with Zipf-like shares (the first kind a fifth of all), places spread over a 0.5° square (a city
of about 2,400 km²), one case in ten from a pool of repeat callers, addresses from a pool a third the size of the
cases. After each step it gathers the planner's statistics (as housekeeping does) and times
``duplicates.load_candidates`` for chunks of 26 new reports drawn the same way (26 is the average judging chunk of
the embedded 300 reports/s runs): wall time in-process, median and 90th percentile of 40 chunks, and the stored
cases the lookup reads per chunk.
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

from bench.case_list import case_row
from bench.loadgen import say
from bench.scratch import drop_databases, scratch_database
from services.dispatch import duplicates
from services.dispatch.app import MIGRATIONS
from services.dispatch.context import DispatchContext
from services.dispatch.models import Case
from services.dispatch.settings import DispatchSettings
from shared.db import create_engine, session_factory
from shared.guide import SEED_GUIDE
from shared.migrate import upgrade_async
from shared.retention import refresh_statistics

KINDS = [f"K{i:03d}" for i in range(60)]
SHARES = [1 / (i + 1) for i in range(60)]
CHUNK = 26
CHUNKS = 40
NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


class City:
    """Reports of one synthetic city: kind, place, caller and address drawn the same way for stored and new ones."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def place(self, addresses: int) -> dict[str, Any]:
        rng = self.rng
        lat, lon = 39.7 + rng.random() * 0.5, 116.1 + rng.random() * 0.5
        return {
            "kind": rng.choices(KINDS, SHARES)[0],
            "lat": lat,
            "lon": lon,
            "caller": f"caller-{rng.randrange(5_000)}" if rng.random() < 0.1 else uuid.uuid4().hex,
            "address": f"幸福路{rng.randrange(max(1, addresses))}号",
        }

    def stored(self, n: int, addresses: int) -> dict[str, Any]:
        drawn = self.place(addresses)
        received = NOW - timedelta(seconds=self.rng.uniform(0, 70 * 3_600))
        row = case_row(
            str(uuid.uuid4()),
            number=f"B{n:012d}",
            unit="U01",
            street="S01",
            kind=drawn["kind"],
            status="dispatched",
            received_at=received,
        )
        return row | {
            "lat": drawn["lat"],
            "lon": drawn["lon"],
            "cell": duplicates.cell_of(drawn["lat"], drawn["lon"]),
            "reporter_key": drawn["caller"],
            "address": drawn["address"],
        }

    def probe(self, at: datetime, addresses: int) -> duplicates.Probe:
        drawn = self.place(addresses)
        return duplicates.Probe(
            case_id=str(uuid.uuid4()),
            kind=drawn["kind"],
            received_at=at,
            caller=drawn["caller"],
            address=drawn["address"],
            lat=drawn["lat"],
            lon=drawn["lon"],
        )


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """A fresh database, filled level by level; the search timed at each level."""
    city = City(11)
    levels: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="jiesu-duplicates-") as folder:
        url = await scratch_database(args.database, "dispatch", Path(folder), prefix="jiesu_duplicates")
        engine = create_engine(url)
        try:
            await upgrade_async(script_location=MIGRATIONS, database_url=url)
            ctx = DispatchContext.load(DispatchSettings(database_url=url, guide_path=SEED_GUIDE))
            sessions = session_factory(engine)
            stored = 0
            for level in sorted(args.open):
                say(f"storing open cases up to {level:,}")
                while stored < level:
                    rows = [city.stored(n, level // 3) for n in range(stored, min(level, stored + 5_000))]
                    async with engine.begin() as connection:
                        await connection.execute(insert(Case.__table__), rows)  # type: ignore[arg-type]
                    stored += len(rows)
                if make_url(url).get_backend_name() == "postgresql":
                    async with engine.connect() as connection:
                        autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
                        await autocommit.execute(text("VACUUM ANALYZE cases"))
                else:
                    await refresh_statistics(engine)
                times: list[float] = []
                read: list[int] = []
                for chunk in range(CHUNKS):
                    at = NOW + timedelta(seconds=chunk)
                    probes = [city.probe(at + timedelta(milliseconds=40 * i), level // 3) for i in range(CHUNK)]
                    async with sessions() as session, session.begin():
                        began = time.perf_counter()
                        await duplicates.load_candidates(session, ctx, probes)
                        times.append(time.perf_counter() - began)
                        found = session.info[duplicates._CHUNK].stored
                        read.append(sum(len(cases) for cases in found.values()))
                times.sort()
                figures = {
                    "open_cases": level,
                    "ms_per_chunk_p50": round(statistics.median(times) * 1000, 2),
                    "ms_per_chunk_p90": round(times[int(len(times) * 0.9)] * 1000, 2),
                    "cases_read_per_chunk": round(statistics.mean(read), 1),
                }
                say(f"  {figures}")
                levels.append(figures)
        finally:
            await engine.dispose()
            if args.database:
                await drop_databases(args.database, [url])
    return {"database": make_url(url).get_backend_name(), "reports_per_chunk": CHUNK, "levels": levels}


def main() -> None:
    """Parse arguments, run, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--open", type=int, nargs="+", default=[1_000, 10_000, 30_000, 100_000], help="open cases")
    parser.add_argument("--database", help="PostgreSQL server URL to make a database on (default: SQLite)")
    print(json.dumps(asyncio.run(run(parser.parse_args())), indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()

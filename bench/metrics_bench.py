"""Metric query latency of the evaluation service as the number of cases grows.

    uv run python -m bench.metrics_bench --cases 100000 1000000 --repeat 40

For each size the state is built by bulk insert into a SQLite database migrated to head:
1. N synthetic cases over one year (2026) are drawn with random outcomes (returns, late signs and completions,
   extensions, call-backs with every answer, reopened rounds, unreachable people, handling times from minutes
   to weeks) over a fixed city: 30 streets x 10 communities x 10 grids, 60 kinds in 15 categories, 25
   departments plus the 30 street offices for territorial kinds;
2. each case's assignment counters go to a staging table, and ``evaluated_cases`` gets one row per case
   (so the database holds the cases as the service would);
3. the roll-up rows (day and month spans; department, street, community, grid and city levels) are made from the
   staging table with ``INSERT ... SELECT ... GROUP BY``, the same rows the event handlers keep up to date
   one event at a time (tests/services/evaluation/test_rollup_correctness.py checks that those equal a full
   recomputation).
The queries then go through the real app (in-process ASGI, the same code path as HTTP) and are timed from the
client side. The dimensions stay fixed while cases grow, which is what a city sees year on year.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sqlite3
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from services.evaluation.app import MIGRATIONS, create_app
from services.evaluation.rollup import BUCKET_COLUMNS, FLOAT_COUNTERS, INT_COUNTERS, bucket_of
from services.evaluation.settings import EvaluationSettings
from shared.auth import MIGRATIONS as AUTH_MIGRATIONS
from shared.auth.settings import AuthSettings
from shared.migrate import upgrade

STREETS = [f"1101990{s:02d}" for s in range(1, 31)]
KINDS = [f"K{k:03d}" for k in range(1, 61)]
TERRITORIAL = set(KINDS[:5])  # handled by the street office of the case's street
FACT_COLUMNS = ("day", "month", "unit", "kind", "category", "street", "community", "grid", "bucket")
COUNTERS = (*INT_COUNTERS, *FLOAT_COUNTERS)
JUNE = {"from": "2026-06-01", "to": "2026-06-30"}
SPRING = {"from": "2026-04-01", "to": "2026-06-29"}
WEEK = {"from": "2026-06-01", "to": "2026-06-07"}
QUERIES: list[tuple[str, str, dict[str, str]]] = [
    ("departments, one month", "/v1/metrics", {"grouping": "month", **JUNE}),
    ("departments, ragged range", "/v1/metrics", {"grouping": "all", "from": "2026-02-15", "to": "2026-05-20"}),
    ("one department by kind, year", "/v1/metrics", {"unit": "DEPT-07", "by": "kind", "grouping": "quarter"}),
    ("one department, 90 days daily", "/v1/metrics", {"unit": "DEPT-07", "grouping": "day", **SPRING}),
    ("kinds, year by quarter", "/v1/metrics", {"level": "kind", "grouping": "quarter"}),
    ("city, year by week", "/v1/metrics", {"level": "city", "grouping": "week"}),
    ("streets, one month", "/v1/metrics", {"level": "street", "grouping": "month", **JUNE}),
    ("all 3,000 grids, one month", "/v1/metrics", {"level": "grid", "grouping": "month", **JUNE}),
    ("all grids, one week daily", "/v1/metrics", {"level": "grid", "grouping": "day", **WEEK}),
    ("ranking, departments, month", "/v1/rankings", {"metric": "satisfaction_rate", "period": "2026-06"}),
    ("ranking, grids, quarter", "/v1/rankings", {"metric": "response_rate", "level": "grid", "period": "2026-Q2"}),
    ("unit scores, month", "/v1/unit-scores", {"period": "2026-06"}),
    ("hot spots, 7 days", "/v1/hotspots", {"until": "2026-06-15T12:00:00+08:00"}),
    ("hot spots, 30 days", "/v1/hotspots", {"until": "2026-06-15T12:00:00+08:00", "window_days": "30"}),
    ("monthly issues, one month", "/v1/monthly-issues", {"month": "2026-06"}),
]
URGENCY = {"normal": 1.0, "urgent": 1.5, "emergency": 2.0}


def draw(rng: random.Random, n: int, spot_rng: random.Random) -> tuple[dict[str, Any], tuple[Any, ...]]:
    """One case: its assignment's counters and its evaluated_cases row (with what it adds to the hot spots)."""
    street = rng.choice(STREETS)
    community = f"{street}{rng.randint(1, 10):03d}"
    grid = f"{community}{rng.randint(1, 10):02d}"
    kind = KINDS[min(int(rng.paretovariate(1.2)) - 1, len(KINDS) - 1)] if rng.random() < 0.7 else rng.choice(KINDS)
    number = int(kind[1:])
    unit = f"ST-{street}" if kind in TERRITORIAL else f"DEPT-{number % 25:02d}"
    at = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randrange(365 * 86400))
    day = (at + timedelta(hours=8)).date()
    c: dict[str, Any] = dict.fromkeys(COUNTERS, 0)
    c["dispatched"] = 1
    bucket: str | None = None
    if rng.random() < 0.06:
        c["returned"] = 1
        c["returned_without_cause"] = int(rng.random() < 0.4)
    elif rng.random() < 0.97:
        c["signed"], c["signed_on_time"] = 1, int(rng.random() < 0.95)
        c["extension_requested"] = int(rng.random() < 0.05)
        c["extended"] = int(c["extension_requested"] and rng.random() < 0.7)
        c["overdue"] = int(rng.random() < 0.04)
        if rng.random() < 0.95:
            hours = rng.lognormvariate(3.3, 1.2)
            c["completed"], c["completed_on_time"] = 1, int(rng.random() < 0.93)
            c["handling_count"], c["handling_hours_sum"] = 1, round(hours, 4)
            bucket = bucket_of(hours)
            if rng.random() < 0.06:
                c["unreachable"] = c["closed"] = 1
            elif rng.random() < 0.95:
                c["callbacks"] = 1
                resolved = rng.random() < 0.93
                answer = rng.choices(["satisfied", "basically_satisfied", "dissatisfied"], [0.85, 0.1, 0.05])[0]
                if not (resolved and answer != "dissatisfied") and rng.random() < 0.2:
                    c["not_unit_fault"] = c["closed"] = 1
                else:
                    c["callbacks_counted"], c["resolved"], c[answer] = 1, int(resolved), 1
                    c["reopened"] = int(not resolved or answer == "dissatisfied")
                    c["closed"] = 1 - c["reopened"]
            if c["closed"]:
                c["scored"], c["score_sum"] = 1, rng.choice([100.0, 90.0, 80.0, 70.0, 50.0])
    fact = {
        "day": day.isoformat(),
        "month": day.replace(day=1).isoformat(),
        "unit": unit,
        "kind": kind,
        "category": f"C{(number - 1) // 4 + 1:02d}",
        "street": street,
        "community": community,
        "grid": grid,
        "bucket": bucket,
        **c,
    }
    stamp = at.replace(tzinfo=None).isoformat(sep=" ")
    assignment = {"unit": unit, "kind": kind, "category": fact["category"], "day": fact["day"],
                  "dispatched_at": at.isoformat(), "counters": {k: v for k, v in c.items() if v}}  # fmt: skip
    case = (f"case-{n:08d}", f"JS{n:010d}", "hotline", kind, fact["category"], street, community, grid, unit,
            "closed" if c["closed"] else "completed" if c["completed"] else "dispatched", stamp, stamp,
            fact["day"], int(c["reopened"]), 0, json.dumps(assignment), int(c["callbacks"]))  # fmt: skip
    # Hot spots: a caller pseudonym from a pool a third the size of the cases (so some call again), an urgency.
    urgency = spot_rng.choices(list(URGENCY), [0.9, 0.08, 0.02])[0]
    caller = f"{spot_rng.randrange(max(n // 3, 1) + 1):016x}"
    spot = (urgency, caller, fact["day"], fact["category"], kind, grid, community, street, f"caller:{caller}",
            URGENCY[urgency])  # fmt: skip
    return fact, (*case, *spot)


def batches(
    rng: random.Random, cases: int, size: int = 20_000
) -> Iterator[tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]]:
    spot_rng = random.Random(rng.random())
    for start in range(0, cases, size):
        facts, rows = [], []
        for n in range(start, min(cases, start + size)):
            fact, case = draw(rng, n, spot_rng)
            facts.append(tuple(fact[name] for name in (*FACT_COLUMNS, *COUNTERS)))
            rows.append(case)
        yield facts, rows


def sums(prefix: str = "") -> str:
    counters = ", ".join(f"SUM({prefix}{name})" for name in COUNTERS)
    buckets = ", ".join(f"SUM(CASE WHEN {prefix}bucket = '{name}' THEN 1 ELSE 0 END)" for name in BUCKET_COLUMNS)
    return f"{counters}, {buckets}"


def build(path: Path, cases: int, seed: int) -> dict[str, int]:
    """A migrated SQLite database holding N cases and the roll-ups they make."""
    upgrade(script_location=MIGRATIONS, database_url=f"sqlite+aiosqlite:///{path}")
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=OFF")
    columns = ", ".join([*FACT_COLUMNS, *COUNTERS])
    db.execute(f"CREATE TEMP TABLE facts ({columns})")
    marks = ", ".join("?" for _ in (*FACT_COLUMNS, *COUNTERS))
    insert_case = (
        "INSERT INTO evaluated_cases (case_id, case_number, source, kind_code, category_code, street_code, "
        "community_code, grid_code, primary_unit, status, judged_at, dispatched_at, period_day, round, "
        "overdue_counted, assignments, callback_attempts, urgency, caller_key, spot_day, spot_category, spot_kind, "
        "spot_grid, spot_community, spot_street, spot_reporter, spot_severity) "
        f"VALUES ({', '.join('?' for _ in range(27))})"
    )
    rng = random.Random(seed)
    for facts, rows in batches(rng, cases):
        db.executemany(f"INSERT INTO facts VALUES ({marks})", facts)
        db.executemany(insert_case, rows)
    targets = ", ".join([*COUNTERS, *BUCKET_COLUMNS])
    levels = {
        "department": ("unit", "kind", "category"),
        "street": ("street", "kind", "category"),
        "community": ("community", "'*'", "'*'"),
        "grid": ("grid", "'*'", "'*'"),
        "city": ("'city'", "'*'", "'*'"),
    }
    for span, period in (("day", "day"), ("month", "month")):
        for level, (code, kind, category) in levels.items():
            db.execute(
                f"INSERT INTO rollups (span, level, period_start, code, kind_code, category_code, {targets}) "
                f"SELECT '{span}', '{level}', {period}, {code}, {kind}, {category}, {sums()} "
                f"FROM facts GROUP BY {period}, {code}, {kind}, {category}"
            )
    rated = (
        "INSERT INTO rollups (span, level, period_start, code, kind_code, category_code, bottom_up_ratings, "
        "bottom_up_score_sum) VALUES (?, ?, ?, ?, '*', '*', ?, ?) ON CONFLICT DO UPDATE SET "
        "bottom_up_ratings = bottom_up_ratings + excluded.bottom_up_ratings, "
        "bottom_up_score_sum = bottom_up_score_sum + excluded.bottom_up_score_sum"
    )
    for unit in sorted({f"DEPT-{u:02d}" for u in range(25)}):  # towns' ratings of departments
        for month in range(1, 13):
            ratings = rng.randint(cases // 20_000, cases // 5_000 + 1)
            score = sum(rng.randint(2, 5) for _ in range(ratings))
            for span, start in (("day", date(2026, month, 15)), ("month", date(2026, month, 1))):
                for level, code in (("department", unit), ("city", "city")):
                    db.execute(rated, (span, level, start.isoformat(), code, ratings, score))
    spot_counters(db)
    db.commit()
    db.execute("ANALYZE")
    found = {
        "cases": db.execute("SELECT COUNT(*) FROM evaluated_cases").fetchone()[0],
        "rollup_rows": db.execute("SELECT COUNT(*) FROM rollups").fetchone()[0],
        "month_rows": db.execute("SELECT COUNT(*) FROM rollups WHERE span = 'month'").fetchone()[0],
        "hotspot_count_rows": db.execute("SELECT COUNT(*) FROM hotspot_counts").fetchone()[0],
        "hotspot_reporter_rows": db.execute("SELECT COUNT(*) FROM hotspot_reporters").fetchone()[0],
    }
    db.close()
    return found


def spot_counters(db: sqlite3.Connection) -> None:
    """The hot-spot counters the event handlers keep, made from the cases' spot columns with GROUP BY.

    tests/services/evaluation/test_hotspot_correctness.py checks that the handlers' counters equal a full
    recomputation.
    """
    for level, cell in (("grid", "spot_grid"), ("community", "spot_community"), ("street", "spot_street")):
        db.execute(
            "INSERT INTO hotspot_counts (level, category_code, cell, day, kind_code, reports, severity_sum, "
            f"from_hotline, from_grid, from_town) SELECT '{level}', spot_category, {cell}, spot_day, spot_kind, "
            "COUNT(*), SUM(spot_severity), SUM(source = 'hotline'), SUM(source = 'grid'), SUM(source = 'town') "
            f"FROM evaluated_cases GROUP BY spot_category, {cell}, spot_day, spot_kind"
        )
        if level != "street":
            db.execute(
                "INSERT INTO hotspot_reporters (level, category_code, cell, day, reporter, reports) "
                f"SELECT '{level}', spot_category, {cell}, spot_day, spot_reporter, COUNT(*) FROM evaluated_cases "
                f"GROUP BY spot_category, {cell}, spot_day, spot_reporter"
            )


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan run, and a client that calls it in-process with an admin key of its own."""
    async with app.router.lifespan_context(app):
        _, key = await app.state.auth.store.create(role="admin", name="metrics bench", rate_per_second=1e6)
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://bench", headers=headers) as client:
            yield client


def auth_for(folder: Path) -> AuthSettings:
    """A credential store of the bench's own, migrated."""
    auth = AuthSettings(database_url=f"sqlite+aiosqlite:///{folder / 'auth.db'}")
    upgrade(script_location=AUTH_MIGRATIONS, database_url=auth.database_url)
    return auth


def settings_for(path: Path) -> EvaluationSettings:
    return EvaluationSettings(
        database_url=f"sqlite+aiosqlite:///{path}",
        embedded_bus_url=f"sqlite+aiosqlite:///{path.with_suffix('.bus.db')}",
        consumers=False,
        relay=False,
    )


async def measure(
    paths: dict[int, Path], repeat: int, queries: list[tuple[str, str, dict[str, str]]], auth: AuthSettings
) -> dict[int, dict[str, dict[str, float]]]:
    """p50 and p95 (ms) of each query at each size, timed in turns so background load hits every size alike."""
    results: dict[int, dict[str, dict[str, float]]] = {size: {} for size in paths}
    async with AsyncExitStack() as stack:
        clients = {
            size: await stack.enter_async_context(running(create_app(settings_for(path), auth=auth)))
            for size, path in paths.items()
        }
        for name, route, params in queries:
            timings: dict[int, list[float]] = {size: [] for size in paths}
            rows: dict[int, int] = {}
            for attempt in range(repeat + 3):
                for size, client in clients.items():
                    began = time.perf_counter()
                    answer = await client.get(route, params=params)
                    elapsed = (time.perf_counter() - began) * 1000
                    assert answer.status_code == 200, answer.text
                    if attempt >= 3:
                        timings[size].append(elapsed)
                    body = answer.json()
                    rows[size] = len(body.get("items") or body.get("ranked", [])) + len(body.get("unranked", []))
            for size, measured in timings.items():
                ordered = sorted(measured)
                results[size][name] = {
                    "p50": statistics.median(ordered),
                    "p95": ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))],
                    "rows": rows[size],
                }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--repeat", type=int, default=40, help="timed runs of each query (after 3 warm-ups)")
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument("--dir", type=Path, default=None, help="where the databases go (default: a temp dir)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--reuse", action="store_true", help="time the databases --dir already holds")
    parser.add_argument("--only", nargs="*", default=[""], help="time only queries whose name contains one of these")
    args = parser.parse_args()
    queries = [q for q in QUERIES if any(part in q[0] for part in args.only)]
    folder = args.dir or Path(tempfile.mkdtemp(prefix="jiesu-metrics-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    report: dict[int, dict[str, Any]] = {}
    paths: dict[int, Path] = {}
    for cases in args.cases:
        path = folder / f"evaluation-{cases}.db"
        sizes: dict[str, Any] = {"cases": cases, "reused": True}
        if not (args.reuse and path.exists()):
            for stale in (path, path.with_suffix(".bus.db")):
                stale.unlink(missing_ok=True)
            began = time.perf_counter()
            sizes = dict(build(path, cases, args.seed))
            sizes["build_seconds"] = round(time.perf_counter() - began)
        sizes["database_mb"] = round(path.stat().st_size / 2**20)
        print(f"{cases:>9,} cases: {sizes}", flush=True)
        report[cases] = {"sizes": sizes}
        paths[cases] = path
    for cases, timings in asyncio.run(measure(paths, args.repeat, queries, auth_for(folder))).items():
        report[cases]["queries"] = timings
    sizes_line = " | ".join(f"{n:,} cases" for n in report)
    print(f"\n| query | rows | {sizes_line} |")
    print("|---|---|" + "---|" * len(report))
    for name, _route, _params in queries:
        cells = " | ".join(
            f"{r['queries'][name]['p50']:.1f} / {r['queries'][name]['p95']:.1f}" for r in report.values()
        )
        rows = "/".join(str(int(r["queries"][name]["rows"])) for r in report.values())
        print(f"| {name} | {rows} | {cells} |")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

"""Cases judged before the hot-spot counters existed are counted by the migration as the handlers count them."""

from __future__ import annotations

import asyncio
import random
import sqlite3
from pathlib import Path

from services.evaluation.app import MIGRATIONS
from shared.migrate import upgrade
from tests.services.evaluation.feed import evaluation_app
from tests.services.evaluation.test_hotspot_correctness import drive

SPOT_COLUMNS = "case_id, spot_day, spot_category, spot_kind, spot_grid, spot_community, spot_street, spot_reporter"


def _rows(path: Path, query: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as db:
        return sorted(db.execute(query).fetchall(), key=repr)


def _copy_cases(source: Path, target: Path) -> None:
    """The cases and places as a database at revision 0003 would hold them (its columns only)."""
    with sqlite3.connect(target) as db:
        db.execute(f"ATTACH DATABASE '{source}' AS live")
        for table in ("evaluated_cases", "report_places"):
            names = ", ".join(row[1] for row in db.execute(f"PRAGMA main.table_info({table})"))
            db.execute(f"INSERT INTO main.{table} ({names}) SELECT {names} FROM live.{table}")
        db.commit()
        db.execute("DETACH DATABASE live")


async def test_the_migration_counts_existing_cases_as_the_handlers_do(tmp_path: Path) -> None:
    live, old = tmp_path / "live.db", tmp_path / "old.db"
    (tmp_path / "live").mkdir()
    async with evaluation_app(f"sqlite+aiosqlite:///{live}", tmp_path / "live") as evaluation:
        truths = await drive(evaluation, random.Random(7), 80, callers=False)
    assert len(truths) == 80
    url = f"sqlite+aiosqlite:///{old}"
    await asyncio.to_thread(upgrade, script_location=MIGRATIONS, database_url=url, revision="0003")
    await asyncio.to_thread(_copy_cases, live, old)
    await asyncio.to_thread(upgrade, script_location=MIGRATIONS, database_url=url)
    for query in (
        "SELECT level, category_code, cell, day, kind_code, reports, round(severity_sum, 6), from_hotline, "
        "from_grid, from_town FROM hotspot_counts WHERE reports != 0",
        "SELECT level, category_code, cell, day, reporter, reports FROM hotspot_reporters WHERE reports != 0",
        f"SELECT {SPOT_COLUMNS} FROM evaluated_cases",
    ):
        made, migrated = await asyncio.gather(
            asyncio.to_thread(_rows, live, query), asyncio.to_thread(_rows, old, query)
        )
        assert migrated == made and made, query

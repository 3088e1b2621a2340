"""Finding reports already delivered: exact by (source, external_id), and from the index however many are stored."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.intake import service
from services.intake.app import MIGRATIONS
from services.intake.models import Report
from services.intake.schemas import ReportCreate
from shared.db import create_engine, session_factory
from shared.migrate import upgrade_async
from shared.pii import DEVELOPMENT_CALLER_SECRET, DEVELOPMENT_KEYS, Keyring, PersonalData
from tests.helpers import migrated_engine, sqlite_plans

PERSONAL = PersonalData(keyring=Keyring.parse(DEVELOPMENT_KEYS), caller_secret=DEVELOPMENT_CALLER_SECRET)
STORED = [("hotline", "h-1"), ("hotline", "h-2"), ("grid", "g-1"), ("town", "h-1"), ("grid", "same")]


async def store(engine: AsyncEngine, keys: list[tuple[str, str]]) -> None:
    reports = [ReportCreate(source=s, external_id=e, content=f"{s} {e}") for s, e in keys]  # type: ignore[arg-type]
    async with session_factory(engine)() as session, session.begin():
        await service.accept_reports(
            session, reports, number_prefix="T", tz=ZoneInfo("Asia/Shanghai"), personal_data=PERSONAL
        )


@pytest.fixture(params=["sqlite", "postgresql"])
async def engine(
    request: pytest.FixtureRequest, tmp_path: Path, pg_databases: Callable[[], Awaitable[str]]
) -> AsyncIterator[AsyncEngine]:
    made = await migrated_engine(request.param, tmp_path, pg_databases, MIGRATIONS)
    try:
        await store(made, STORED)
        yield made
    finally:
        await made.dispose()


async def test_a_lookup_finds_exactly_the_pairs_delivered(engine: AsyncEngine) -> None:
    asked = [
        ("hotline", "h-1"),  # delivered
        ("grid", "h-1"),  # that id only under other sources
        ("town", "h-1"),  # delivered
        ("hotline", "g-1"),  # an id of another source
        ("grid", "same"),  # delivered
        ("town", "never"),
        ("hotline", "h-1"),  # asked twice
    ]
    async with session_factory(engine)() as session, session.begin():
        found = await service.find_many(session, asked)
    assert sorted(found) == [("grid", "same"), ("hotline", "h-1"), ("town", "h-1")]
    async with session_factory(engine)() as session:
        stored = {(r.source, r.external_id): r for r in (await session.execute(select(Report))).scalars()}
    for key, row in found.items():
        # What its sender was answered with, and the fingerprint a repeat is told from a different report by.
        assert (row.id, row.case_number, row.fingerprint) == (
            stored[key].id,
            stored[key].case_number,
            stored[key].fingerprint,
        )
        assert row.case_number.startswith("T")
    async with session_factory(engine)() as session, session.begin():
        assert await service.find_many(session, []) == {}
        assert await service.find_many(session, [("grid", "nothing")]) == {}


async def test_on_sqlite_a_lookup_of_a_thousand_pairs_reads_the_index_and_scans_no_table(tmp_path: Path) -> None:
    """A full scan per lookup would make every batch and every group commit slower with each report ever stored."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'intake.db'}"
    await upgrade_async(script_location=MIGRATIONS, database_url=url)
    engine = create_engine(url)
    found: dict[tuple[str, str], Any] = {}

    async def look_up() -> None:
        asked = [(source, f"h-{n}") for n in range(1000) for source in ("hotline", "grid")][:1000]
        async with session_factory(engine)() as session, session.begin():
            found.update(await service.find_many(session, asked))

    try:
        await store(engine, [("hotline", f"h-{n}") for n in range(200)])
        plans = await sqlite_plans(engine, "reports", look_up)
        assert sorted(found) == sorted(("hotline", f"h-{n}") for n in range(200))
        assert len(plans) == 1
        steps = plans[0]
        searches = [s for s in steps if s.startswith("SEARCH reports USING INDEX")]
        assert searches and all("(source=? AND external_id=?)" in s for s in searches), steps
        assert not [s for s in steps if s.startswith("SCAN reports")], steps
    finally:
        await engine.dispose()

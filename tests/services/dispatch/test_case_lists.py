"""Lists of cases: the right cases for each caller, newest first, read from indexes rather than a sort of them all."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.case_list import case_row
from services.dispatch import api_scope, service
from services.dispatch.app import MIGRATIONS
from services.dispatch.duplicates import OPEN
from services.dispatch.models import Case, CaseTask
from shared.auth import Principal
from shared.db import create_engine, session_factory
from shared.migrate import upgrade_async
from shared.retention import refresh_statistics
from tests.helpers import migrated_engine, sqlite_plans

T0 = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
# (id, primary unit, minutes after T0); "c-4" also has a cooperating task for U1.
CASES = [("c-1", "U1", 1), ("c-2", "U2", 2), ("c-3", "U1", 3), ("c-4", "U3", 4), ("c-5", "U2", 5), ("c-6", "U1", 5)]


def _row(case_id: str, unit: str, minutes: int) -> dict[str, Any]:
    at = T0 + timedelta(minutes=minutes)
    return case_row(
        case_id, number=f"N-{case_id}", unit=unit, street="S1", kind=None, status="dispatched", received_at=at
    )


@pytest.fixture(params=["sqlite", "postgresql"])
async def engine(
    request: pytest.FixtureRequest, tmp_path: Path, pg_databases: Callable[[], Awaitable[str]]
) -> AsyncIterator[AsyncEngine]:
    made = await migrated_engine(request.param, tmp_path, pg_databases, MIGRATIONS)
    async with made.begin() as connection:
        await connection.execute(insert(Case.__table__), [_row(*c) for c in CASES])  # type: ignore[arg-type]
        await connection.execute(
            insert(CaseTask.__table__),  # type: ignore[arg-type]
            [{"case_id": "c-4", "unit_code": "U1", "role": "cooperating", "status": "assigned"}],
        )
    try:
        yield made
    finally:
        await made.dispose()


async def page(engine: AsyncEngine, principal: Principal, *, limit: int = 50, offset: int = 0) -> tuple[list[str], int]:
    async with session_factory(engine)() as session, session.begin():
        cases, total = await api_scope.list_visible(
            session,
            principal,
            status=[],
            unit=None,
            kind=None,
            street=None,
            source=None,
            limit=limit,
            offset=offset,
        )
    return [c.id for c in cases], total


async def test_a_unit_lists_its_own_and_its_tasked_cases_newest_first(engine: AsyncEngine) -> None:
    unit = Principal(credential_id="u", role="unit", units=("U1",))
    assert await page(engine, unit) == (["c-6", "c-4", "c-3", "c-1"], 4)  # newest first
    assert await page(engine, unit, limit=2, offset=1) == (["c-4", "c-3"], 4)
    two = Principal(credential_id="u", role="unit", units=("U2", "U3"))
    assert await page(engine, two) == (["c-5", "c-4", "c-2"], 3)
    staff = Principal(credential_id="s", role="admin")
    # c-5 and c-6 were received at the same moment: they keep the order of their ids.
    assert await page(engine, staff) == (["c-5", "c-6", "c-4", "c-3", "c-2", "c-1"], 6)
    assert await page(engine, staff, limit=3, offset=2) == (["c-4", "c-3", "c-2"], 6)


async def test_on_sqlite_pages_read_from_indexes_not_a_sort_of_every_case(tmp_path: Path) -> None:
    """With a city's cases, a sort or a test of every case on each page took 80-450 ms at 300,000 cases."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'dispatch.db'}"
    await upgrade_async(script_location=MIGRATIONS, database_url=url)
    engine = create_engine(url)

    async def both() -> None:
        await page(engine, Principal(credential_id="s", role="admin"))
        await page(engine, Principal(credential_id="u", role="unit", units=("U1",)))

    try:
        plans = await sqlite_plans(engine, "cases", both)
    finally:
        await engine.dispose()
    assert len(plans) == 4  # a count and a page for each caller
    everything_page = plans[1]
    assert any("USING INDEX ix_cases_received" in step for step in everything_page), everything_page
    assert not [s for s in everything_page if s == "USE TEMP B-TREE FOR ORDER BY"], everything_page
    for plan in plans[2:]:  # the unit's count and page: both sides of its OR are index lookups
        assert any("ix_cases_primary_unit" in step for step in plan), plan
        assert not [s for s in plan if s == "SCAN cases"], plan


async def test_with_table_statistics_sqlite_pages_open_cases_from_the_time_index(tmp_path: Path) -> None:
    """Without statistics SQLite reads open cases through the status index and sorts them all (~110 ms at 300,000
    cases); housekeeping gathers statistics, and then it walks the time index and stops after a page."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'dispatch.db'}"
    await upgrade_async(script_location=MIGRATIONS, database_url=url)
    engine = create_engine(url)
    statuses = ["dispatched", "closed", "closed", "closed", "completed"]  # a fifth open, as in a city

    async def add(start: int, count: int) -> None:
        rows = [
            case_row(
                f"c-{n}",
                number=f"N-{n}",
                unit=f"U{n % 50}",
                street=f"S{n % 20}",
                kind=None,
                status=statuses[n % 5],
                received_at=T0 + timedelta(seconds=n),
            )
            for n in range(start, start + count)
        ]
        async with engine.begin() as connection:
            await connection.execute(insert(Case.__table__), rows)  # type: ignore[arg-type]

    async def open_page() -> list[str]:
        async with session_factory(engine)() as session, session.begin():
            cases, total = await service.list_cases(
                session, status=list(OPEN), unit=None, kind=None, street=None, source=None, limit=50, offset=0
            )
        assert total == 1000
        return [c.id for c in cases]

    try:
        await add(0, 5000)
        newest_open = [f"c-{n}" for n in range(4995, 4995 - 250, -5)]
        assert await open_page() == newest_open
        sorted_before = (await sqlite_plans(engine, "cases", open_page))[1]
        assert "USE TEMP B-TREE FOR ORDER BY" in sorted_before, sorted_before

        assert "cases" in await refresh_statistics(engine)
        walked = (await sqlite_plans(engine, "cases", open_page))[1]
        assert any("USING INDEX ix_cases_received" in step for step in walked), walked
        assert "USE TEMP B-TREE FOR ORDER BY" not in walked, walked
        assert await open_page() == newest_open  # the same page, read another way

        assert "cases" not in await refresh_statistics(engine)  # unchanged: not gathered again
        await add(5000, 6000)
        assert "cases" in await refresh_statistics(engine)  # more than twice the size: gathered again
    finally:
        await engine.dispose()

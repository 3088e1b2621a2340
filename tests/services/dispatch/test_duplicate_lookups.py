"""The duplicate search's lookups: map cells that cover the search circle, wide radii, and cases stored before cells."""

from __future__ import annotations

import asyncio
import math
import random
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bench.case_list import case_row
from services.dispatch.app import MIGRATIONS
from services.dispatch.context import DispatchContext
from services.dispatch.duplicates import MAX_CELLS, address_key, cell_of, cells_within, distance_m
from services.dispatch.models import Case
from services.dispatch.settings import DispatchSettings
from shared.db import create_engine, session_factory
from shared.guide import SEED_GUIDE
from shared.migrate import upgrade, upgrade_async
from tests.services.dispatch.chunking import (
    GARBAGE,
    LIGHT,
    NOISE,
    NOW,
    Databases,
    in_chunks,
    one_at_a_time,
    report,
)
from tests.services.dispatch.test_duplicate_chunks import outcome


def _moved(lat: float, lon: float, metres: float, bearing: float) -> tuple[float, float]:
    """The point ``metres`` from (lat, lon) along ``bearing`` (radians), on the same sphere as ``distance_m``."""
    arc, p1, l1 = metres / 6_371_000, math.radians(lat), math.radians(lon)
    p2 = math.asin(math.sin(p1) * math.cos(arc) + math.cos(p1) * math.sin(arc) * math.cos(bearing))
    l2 = l1 + math.atan2(math.sin(bearing) * math.sin(arc) * math.cos(p1), math.cos(arc) - math.sin(p1) * math.sin(p2))
    return math.degrees(p2), math.degrees(l2)


@pytest.mark.parametrize("metres", [50, 250, 1_000, 2_500])
def test_every_place_within_the_distance_lies_in_one_of_the_cells_searched(metres: float) -> None:
    rng = random.Random(metres)
    checked = 0
    for _ in range(3_000):
        lat, lon = rng.uniform(-75, 75), rng.uniform(-179, 179)
        if rng.random() < 0.2:  # on and around cell edges, the equator and the prime meridian
            lat, lon = round(lat, 2) + rng.choice([-1e-12, 0.0, 1e-12]), round(lon, 2)
        if rng.random() < 0.1:
            lat, lon = rng.uniform(-0.01, 0.01), rng.uniform(-0.01, 0.01)
        cells = cells_within(lat, lon, metres)
        if cells is None:
            continue
        assert cell_of(lat, lon) in cells
        for _ in range(8):
            other = _moved(lat, lon, metres * rng.choice([1.0, 0.999, rng.random()]), rng.uniform(0, 2 * math.pi))
            if distance_m(lat, lon, *other) <= metres:
                assert cell_of(*other) in cells, (lat, lon, other, metres)
                checked += 1
    assert checked > 15_000


def test_radii_too_wide_for_cells_and_places_by_the_poles_or_the_180th_meridian_read_the_kinds_window() -> None:
    assert len(cells_within(39.9, 116.4, 250) or []) <= 4
    assert cells_within(39.9, 116.4, 20_000) is None, f"more than {MAX_CELLS} cells"
    assert cells_within(89.5, 10.0, 250) is None
    assert cells_within(-10.0, 179.999, 250) is None
    assert cell_of(None, 116.4) is None and cell_of(91.0, 0.0) is None and cell_of(0.0, -180.5) is None
    assert (
        address_key("  西河大街8号\u3000") == "西河大街8号"
        and address_key(" \t ") is None
        and address_key(None) is None
    )


async def test_a_wide_radius_still_merges_and_a_chunk_finds_what_one_at_a_time_finds(
    tmp_path: Path, pg_databases: Callable[[], Awaitable[str]]
) -> None:
    engines: list[AsyncEngine] = []

    async def dispatch(url: str) -> tuple[DispatchContext, async_sessionmaker[AsyncSession]]:
        await upgrade_async(script_location=MIGRATIONS, database_url=url)
        settings = DispatchSettings(database_url=url, guide_path=SEED_GUIDE, duplicate_distance_m=20_000)
        engines.append(create_engine(url))
        return DispatchContext.load(settings), session_factory(engines[-1])

    stored = [report(LIGHT, at=NOW - timedelta(hours=1), location={"lat": 39.90, "lon": 116.30})]
    chunk = [
        report(LIGHT, at=NOW, location={"lat": 40.02, "lon": 116.35}),  # 14 km away: within 20 km
        report(LIGHT, at=NOW, location={"lat": 40.30, "lon": 116.30}),  # 44 km away: a case of its own
    ]
    try:
        for backend in ("sqlite", "postgres"):
            urls = [f"sqlite+aiosqlite:///{tmp_path / f'{n}.db'}" for n in (1, 2)]
            if backend == "postgres":
                urls = [await pg_databases(), await pg_databases()]
            ctx, chunked = await dispatch(urls[0])
            _, single = await dispatch(urls[1])
            await in_chunks(stored, ctx, chunked)
            await in_chunks(chunk, ctx, chunked)
            await one_at_a_time(stored + chunk, ctx, single)
            got, expected = await outcome(chunked), await outcome(single)
            assert got["cases"] == expected["cases"], backend
            assert [got["cases"][e.data["id"]][2] for e in chunk] == [stored[0].data["id"], None], backend
    finally:
        for engine in engines:
            await engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_cases_stored_before_cells_get_their_cell_and_a_trimmed_address(
    backend: str, sqlite_url: str, pg_databases: Callable[[], Awaitable[str]]
) -> None:
    url = await pg_databases() if backend == "postgres" else sqlite_url
    await asyncio.to_thread(upgrade, script_location=MIGRATIONS, database_url=url, revision="0008")
    places = [
        (39.9042, 116.4074, " 东城区正义路2号 "),
        (-33.86, -151.2, "\u3000"),
        (None, None, "西河大街8号"),
        (None, None, None),
    ]
    ids = [str(uuid.uuid4()) for _ in places]
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            stored = [
                case_row(
                    case_id,
                    number=f"JS{n:07d}",
                    unit="U",
                    street="S",
                    kind="K0101",
                    status="dispatched",
                    received_at=NOW,
                )
                | {"lat": lat, "lon": lon, "address": address}
                for n, (case_id, (lat, lon, address)) in enumerate(zip(ids, places, strict=True))
            ]
            await conn.execute(sa.insert(Case.__table__), stored)  # the columns of revision 0008 only
        await upgrade_async(script_location=MIGRATIONS, database_url=url)
        async with engine.connect() as conn:
            rows = {
                row.id: (row.cell, row.address)
                for row in await conn.execute(sa.text("SELECT id, cell, address FROM cases"))
            }
    finally:
        await engine.dispose()
    assert [rows[case_id] for case_id in ids] == [
        (cell_of(39.9042, 116.4074), "东城区正义路2号"),
        (cell_of(-33.86, -151.2), None),
        (None, "西河大街8号"),
        (None, None),
    ]


async def test_reports_of_three_kinds_in_one_chunk_each_find_their_own_kinds_case_nearby(databases: Databases) -> None:
    here = {"lat": 39.9100, "lon": 116.3100}
    near = {"lat": 39.9105, "lon": 116.3104}  # about 65 m away
    stored = [report(kind, at=NOW - timedelta(hours=3), location=here) for kind in (LIGHT, NOISE, GARBAGE)]
    chunk = [report(kind, at=NOW, location=near) for kind in (GARBAGE, LIGHT, NOISE)]
    ctx, chunked = await databases()
    _, single = await databases()
    await in_chunks(stored, ctx, chunked)
    await in_chunks(chunk, ctx, chunked)
    await one_at_a_time(stored + chunk, ctx, single)
    got, expected = await outcome(chunked), await outcome(single)
    assert got["cases"] == expected["cases"]
    merged = [got["cases"][e.data["id"]][2] for e in chunk]
    assert merged == [stored[2].data["id"], stored[0].data["id"], stored[1].data["id"]]

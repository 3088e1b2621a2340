"""Hot-spot roll-ups: what each judged report adds to its place cells, kept up to date as events arrive.

A report lands on one cell per level (``grid``, ``community``, ``street``) for its category, kind and local day.
The case remembers what it added (its ``spot_*`` columns), so when its kind, urgency or place changes the old
contribution is taken back and the new one added, in the same transaction: the counters never need a recount.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Dialect, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from services.evaluation import chunk
from services.evaluation.chunk import Case, Place
from services.evaluation.models import hotspot_counts, hotspot_reporters
from shared.db import ArrayPart, insert_part, write_buffer

URGENCY_WEIGHT = {"normal": 1.0, "urgent": 1.5, "emergency": 2.0}
SOURCES = ("hotline", "grid", "town")
CELL_LEVELS = ("grid", "community", "street")
NO_CELL = ""  # counted for the kind and month, never part of a hot spot
COUNT_KEYS = ("level", "category_code", "cell", "day", "kind_code")
REPORTER_KEYS = ("level", "category_code", "cell", "day", "reporter")
COUNT_COUNTERS = ("reports", "severity_sum", *(f"from_{source}" for source in SOURCES))
REPORTER_COUNTERS = ("reports",)
Counters = Mapping[tuple[Any, ...], Sequence[float]]  # key columns' values -> counter values, in column order
_M_PER_DEGREE = 111_320


def gps_cell(lat: float, lon: float, cell_m: float) -> str:
    """The square of about ``cell_m`` metres a GPS point lies in."""
    row = math.floor(lat * _M_PER_DEGREE / cell_m)
    centre_lat = (row + 0.5) * cell_m / _M_PER_DEGREE
    lon_m = _M_PER_DEGREE * max(math.cos(math.radians(centre_lat)), 0.01)
    return f"gps{cell_m:g}m:{row},{math.floor(lon * lon_m / cell_m)}"


def cells_of(case: Case, place: Place | None, *, cell_m: float) -> dict[str, str]:
    """The report's cell per level: its area code; without one, its GPS square, else its address, else none."""
    located = NO_CELL
    if place is not None and place.lat is not None and place.lon is not None:
        located = gps_cell(place.lat, place.lon, cell_m)
    elif place is not None and place.place_key:
        located = place.place_key
    return {
        "grid": case.grid_code or located,
        "community": case.community_code or located,
        "street": case.street_code or NO_CELL,
    }


def reporter_of(case: Case, place: Place | None) -> str:
    """Who reported: the caller's pseudonym when known, else the same source at the same spot is one reporter."""
    if case.caller_key:
        return f"caller:{case.caller_key}"
    if place is not None and place.place_key:
        return f"{case.source}:{place.place_key}"
    return f"case:{case.case_id}"


@dataclass(frozen=True, slots=True)
class Contribution:
    """What one report adds to the hot-spot counters."""

    day: date
    category: str
    kind: str
    cells: tuple[tuple[str, str], ...]
    reporter: str
    source: str
    severity: float


def contribution_of(case: Case, place: Place | None, *, tz: ZoneInfo, cell_m: float) -> Contribution | None:
    """What the case should add now (nothing before it has a kind)."""
    if case.kind_code is None:
        return None
    return Contribution(
        day=case.judged_at.astimezone(tz).date(),
        category=case.category_code or case.kind_code,
        kind=case.kind_code,
        cells=tuple(sorted(cells_of(case, place, cell_m=cell_m).items())),
        reporter=reporter_of(case, place),
        source=case.source,
        severity=URGENCY_WEIGHT.get(case.urgency, 1.0),
    )


def recorded(case: Case) -> Contribution | None:
    """What the case has added so far."""
    if case.spot_day is None or case.spot_kind is None:
        return None
    cells = {"grid": case.spot_grid or NO_CELL, "community": case.spot_community or NO_CELL}
    cells["street"] = case.spot_street or NO_CELL
    return Contribution(
        day=case.spot_day,
        category=case.spot_category or case.spot_kind,
        kind=case.spot_kind,
        cells=tuple(sorted(cells.items())),
        reporter=case.spot_reporter or f"case:{case.case_id}",
        source=case.source,
        severity=case.spot_severity or 1.0,
    )


def _remember(case: Case, new: Contribution | None) -> None:
    cells = dict(new.cells) if new else {}
    case.spot_day = new.day if new else None
    case.spot_category = new.category if new else None
    case.spot_kind = new.kind if new else None
    case.spot_grid, case.spot_community, case.spot_street = (cells.get(lv) for lv in CELL_LEVELS)
    case.spot_reporter = new.reporter if new else None
    case.spot_severity = new.severity if new else None


async def serialise(session: AsyncSession, case_id: str) -> None:
    """Make the case and report consumers take turns on one case (a consumer chunk took its turns up front)."""
    prepared = chunk.of(session)
    if prepared is None or case_id not in prepared.serialised:
        await chunk.serialise_many(session, [case_id])


async def recount(session: AsyncSession, case: Case, *, tz: ZoneInfo, cell_m: float) -> None:
    """Bring the counters in line with the case as it is now: take back what it added, add what it adds."""
    place = await chunk.place(session, case.case_id)
    new = contribution_of(case, place, tz=tz, cell_m=cell_m)
    old = recorded(case)
    if new == old:
        return
    if old is not None:
        await _add(session, old, -1)
    if new is not None:
        await _add(session, new, 1)
    _remember(case, new)


async def _add(session: AsyncSession, part: Contribution, sign: int) -> None:
    by_source = tuple(sign if source == part.source else 0 for source in SOURCES)
    counts = {
        (level, part.category, cell, part.day, part.kind): (sign, sign * part.severity, *by_source)
        for level, cell in part.cells
    }
    await _merge(session, hotspot_counts, counts, keys=COUNT_KEYS, counters=COUNT_COUNTERS)
    reporters = {
        (level, part.category, cell, part.day, part.reporter): (sign,)
        for level, cell in part.cells
        if level != "street" and cell != NO_CELL
    }
    await _merge(session, hotspot_reporters, reporters, keys=REPORTER_KEYS, counters=REPORTER_COUNTERS)


async def _merge(
    session: AsyncSession, table: Table, rows: Counters, *, keys: tuple[str, ...], counters: tuple[str, ...]
) -> None:
    """Add to counter rows now, or, inside a consumer chunk, sum them and write them once at the chunk's end."""
    buffer = write_buffer(session)
    if buffer is None:
        await _upsert(session, table, rows, keys=keys, counters=counters)
        return

    async def write(session: AsyncSession, pending: dict[tuple[Any, ...], list[float]]) -> None:
        await _upsert(session, table, pending, keys=keys, counters=counters)

    def parts(dialect: Dialect, pending: Counters) -> list[ArrayPart] | None:
        return _upsert_parts(dialect, table, pending, keys=keys, counters=counters)

    name = f"evaluation.{table.name}"
    _, pending = buffer.merges.setdefault(name, (write, {}))
    buffer.parts[name] = parts
    for key, values in rows.items():
        known = pending.get(key)
        if known is None:
            pending[key] = list(values)
        else:
            for i, value in enumerate(values):
                known[i] += value


async def _upsert(
    session: AsyncSession,
    table: Table,
    rows: Counters,
    *,
    keys: tuple[str, ...],
    counters: tuple[str, ...],
) -> None:
    """Add the rows' counters to existing rows, in key order so concurrent writers never deadlock."""
    if not rows:
        return
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    statement = _upsert_statement(dialect, table, keys, counters)
    await (await session.connection()).execute(statement, _ordered(rows, keys=keys, counters=counters))


def _ordered(rows: Counters, *, keys: tuple[str, ...], counters: tuple[str, ...]) -> list[dict[str, Any]]:
    """The rows as column values, in key order (strings and a date, never None: the same order as their text)."""
    names = (*keys, *counters)
    return [dict(zip(names, (*key, *rows[key]), strict=True)) for key in sorted(rows)]


def _upsert_parts(
    dialect: Dialect, table: Table, rows: Counters, *, keys: tuple[str, ...], counters: tuple[str, ...]
) -> list[ArrayPart] | None:
    """PostgreSQL: the same upsert as a part of the chunk's one statement."""
    if not rows:
        return []
    part = insert_part(table, _ordered(rows, keys=keys, counters=counters), dialect, adding=(keys, counters))
    return None if part is None else [part]


@functools.cache
def _upsert_statement(dialect: str, table: Table, keys: tuple[str, ...], counters: tuple[str, ...]) -> Any:
    """The upsert adding counters to a table's rows, built once (executed once per row, compiled once)."""
    insert = postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
    return insert.on_conflict_do_update(
        index_elements=list(keys), set_={name: table.c[name] + insert.excluded[name] for name in counters}
    )

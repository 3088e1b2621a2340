"""What a consumer chunk reads up front and writes back at its end: its cases and report places.

Without it each event looked its case up (and locked it) on its own, a few statements per event. With it the
chunk's cases and places are read (and locked) in two queries, held as plain rows while the handlers change them,
and written back at the chunk's end: one INSERT for the new cases, one for the new places and one UPDATE (the same
columns for every row) for the cases that changed; on PostgreSQL these and the chunk's counter upserts (hot spots,
roll-ups) are parts of one statement. Outside a consumer chunk (the API, a test calling a handler)
nothing is held: every look-up goes to the database and cases are ORM objects.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from datetime import date, datetime
from operator import attrgetter
from typing import Any, NamedTuple, cast

from sqlalchemy import ARRAY, JSON, Dialect, Table, Text, bindparam, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.evaluation.models import EvaluatedCase, ReportPlace
from shared.db import ArrayPart, insert_part, insert_rows, update_part, write_buffer
from shared.events import CloudEvent

_KEY = "evaluation.chunk"
_WRITE_BACK = "evaluation.cases"  # the buffer writes merges in name order: cases before the counters

# One advisory lock per case, taken in key order so two consumers of the same cases never wait on each other in a
# cycle; the sorted subquery fixes the order the outer query takes them in.
_LOCK_MANY = text(
    "SELECT count(pg_advisory_xact_lock(k)) FROM "
    "(SELECT hashtext(x) AS k FROM unnest(:keys) AS x ORDER BY 1) AS ordered"
).bindparams(bindparam("keys", type_=ARRAY(Text)))


@dataclass(slots=True, kw_only=True, eq=False)
class CaseRow:
    """An ``evaluated_cases`` row as a chunk holds it: the columns of EvaluatedCase, without ORM bookkeeping."""

    case_id: str
    case_number: str
    source: str
    kind_code: str | None = None
    category_code: str | None = None
    judged_kind_code: str | None = None
    street_code: str | None = None
    community_code: str | None = None
    grid_code: str | None = None
    place_name: str | None = None
    urgency: str = "normal"
    primary_unit: str | None = None
    status: str
    merged_into: str | None = None
    judged_at: datetime
    dispatched_at: datetime | None = None
    period_day: date | None = None
    signed_at: datetime | None = None
    completed_at: datetime | None = None
    round: int = 0
    overdue_counted: bool = False
    assignments: list[dict[str, Any]] = field(default_factory=list)
    callback_attempts: int = 0
    outcome: str | None = None
    closed_at: datetime | None = None
    score: float | None = None
    score_breakdown: dict[str, Any] | None = None
    caller_key: str | None = None
    spot_day: date | None = None
    spot_category: str | None = None
    spot_kind: str | None = None
    spot_grid: str | None = None
    spot_community: str | None = None
    spot_street: str | None = None
    spot_reporter: str | None = None
    spot_severity: float | None = None


@dataclass(slots=True, kw_only=True, eq=False)
class PlaceRow:
    """A ``report_places`` row as a chunk holds it."""

    case_id: str
    address: str | None
    place_key: str | None
    lat: float | None
    lon: float | None
    received_at: datetime


Case = EvaluatedCase | CaseRow
"""A case as handlers see it: a chunk's row, or an ORM object outside a chunk."""
Place = ReportPlace | PlaceRow

CASE_COLUMNS = tuple(f.name for f in fields(CaseRow))
PLACE_COLUMNS = tuple(f.name for f in fields(PlaceRow))
_CASES = cast(Table, EvaluatedCase.__table__)
_PLACES = cast(Table, ReportPlace.__table__)
_case_values = attrgetter(*CASE_COLUMNS)
_place_values = attrgetter(*PLACE_COLUMNS)
_JSON_COLUMNS = tuple(name for name in CASE_COLUMNS if isinstance(_CASES.c[name].type, JSON))
# By key; the columns it sets are the parameters' keys (the chunk's changed columns), one executemany per chunk.
_UPDATE_CASES = update(_CASES).where(_CASES.c.case_id == bindparam("b_case_id"))
# A chunk's cases (locked) and places, read with two statements built once.
_LOAD_CASES = (
    select(*(_CASES.c[name] for name in CASE_COLUMNS))
    .where(_CASES.c.case_id.in_(bindparam("ids", expanding=True)))
    .order_by(_CASES.c.case_id)
    .with_for_update()
)
_LOAD_PLACES = select(*(_PLACES.c[name] for name in PLACE_COLUMNS)).where(
    _PLACES.c.case_id.in_(bindparam("ids", expanding=True))
)


@dataclass(slots=True)
class Chunk:
    """The cases and places of one chunk: present, or known to be absent (None)."""

    cases: dict[str, Case | None] = field(default_factory=dict)
    places: dict[str, Place | None] = field(default_factory=dict)
    serialised: set[str] = field(default_factory=set)
    loaded: dict[str, tuple[Any, ...]] = field(default_factory=dict)  # each read case's columns, as read
    new_cases: list[CaseRow] = field(default_factory=list)
    new_places: list[PlaceRow] = field(default_factory=list)


def of(session: AsyncSession) -> Chunk | None:
    """The session's chunk, when a consumer prepared one."""
    chunk = session.info.get(_KEY)
    return chunk if isinstance(chunk, Chunk) else None


def case_id_of(event: CloudEvent) -> str | None:
    """The case an event is about (a received report's id is its case's id)."""
    value = event.data.get("case_id") or event.data.get("id")
    return str(value) if value else None


async def serialise_many(session: AsyncSession, case_ids: Sequence[str]) -> None:
    """Make the case and report consumers take turns on these cases (PostgreSQL; SQLite has one writer anyway)."""
    if case_ids and session.bind is not None and session.bind.dialect.name == "postgresql":
        await (await session.connection()).execute(_LOCK_MANY, {"keys": [f"spot:{case_id}" for case_id in case_ids]})


async def prepare(session: AsyncSession, events: Sequence[CloudEvent]) -> None:
    """Lock and load the chunk's cases and report places, two queries for the whole chunk.

    Only inside buffered writes (a consumer's transaction), whose end writes the chunk's rows back.
    """
    buffer = write_buffer(session)
    if buffer is None:
        return
    chunk = Chunk()
    session.info[_KEY] = chunk
    buffer.merges[_WRITE_BACK] = (_write_back, chunk)
    buffer.parts[_WRITE_BACK] = _write_back_parts
    ids = sorted({case_id for event in events if (case_id := case_id_of(event)) is not None})
    if not ids:
        return
    await serialise_many(session, ids)
    chunk.serialised.update(ids)
    # Core statements on the session's connection: the ORM's execute adds its own cost and nothing these need.
    connection = await session.connection()
    cases = await connection.execute(_LOAD_CASES, {"ids": ids})
    places = await connection.execute(_LOAD_PLACES, {"ids": ids})
    chunk.cases = dict.fromkeys(ids)
    for values in cases:
        chunk.cases[values[0]] = CaseRow(**dict(zip(CASE_COLUMNS, values, strict=True)))
        chunk.loaded[values[0]] = tuple(values)
    chunk.places = dict.fromkeys(ids)
    for values in places:
        chunk.places[values[0]] = PlaceRow(**dict(zip(PLACE_COLUMNS, values, strict=True)))


def add_case(session: AsyncSession, columns: dict[str, Any]) -> Case:
    """A new case: held by the chunk and inserted at its end, or, outside a chunk, added to the session."""
    chunk = of(session)
    if chunk is None:
        case = EvaluatedCase(**columns)
        session.add(case)
        return case
    row = CaseRow(**columns)
    chunk.cases[row.case_id] = row
    chunk.new_cases.append(row)
    return row


def add_place(session: AsyncSession, columns: dict[str, Any]) -> Place:
    """A new report place: held by the chunk and inserted at its end, or, outside a chunk, added to the session."""
    chunk = of(session)
    if chunk is None:
        place = ReportPlace(**columns)
        session.add(place)
        return place
    row = PlaceRow(**columns)
    chunk.places[row.case_id] = row
    chunk.new_places.append(row)
    return row


async def place(session: AsyncSession, case_id: str) -> Place | None:
    """Where the case's report was made, from the chunk when it holds it."""
    chunk = of(session)
    if chunk is not None and case_id in chunk.places:
        return chunk.places[case_id]
    return await session.get(ReportPlace, case_id)


class _Pending(NamedTuple):
    """What a chunk's end writes: new places, new cases (by the columns they name), changed cases."""

    places: list[dict[str, Any]]
    cases: list[list[dict[str, Any]]]
    changed: dict[str, tuple[Any, ...]]  # each changed case's columns, as they will be stored
    columns: list[tuple[int, str]]  # the columns the update sets (any of the changed cases changed them)
    written: dict[str, tuple[Any, ...]]  # each new or changed case's columns, as they will be stored

    def updates(self, key: str) -> list[dict[str, Any]]:
        """The update's rows: each changed case's id (as ``key``) and the columns the update sets."""
        return [
            {key: case_id} | {name: values[i] for i, name in self.columns} for case_id, values in self.changed.items()
        ]


def _pending(chunk: Chunk) -> _Pending:
    """The chunk's writes, leaving the chunk as it is.

    The update sets the columns any of the chunk's cases changed, for all of them (a case that kept one of those
    columns gets the value it has): one column set per chunk, and few columns (a received report changes only the
    hot-spot columns).
    """
    places = [dict(zip(PLACE_COLUMNS, _place_values(p), strict=True)) for p in chunk.new_places]
    written = {row.case_id: _case_values(row) for row in chunk.new_cases}
    changed: dict[str, tuple[Any, ...]] = {}
    columns: set[int] = set()
    for case_id in sorted(chunk.loaded):  # key order, as the rows were locked
        case = chunk.cases[case_id]
        if not isinstance(case, CaseRow):
            continue
        values, loaded = _case_values(case), chunk.loaded[case_id]
        if values != loaded:
            columns.update(i for i, (now, was) in enumerate(zip(values, loaded, strict=True)) if now != was)
            changed[case_id] = values
    names = [(i, CASE_COLUMNS[i]) for i in sorted(columns)]
    return _Pending(places, _case_groups(chunk.new_cases), changed, names, written | changed)


def _written(chunk: Chunk, pending: _Pending) -> None:
    """The chunk after its writes: nothing new, and what was written is what it holds as read."""
    chunk.new_places = []
    chunk.new_cases = []
    chunk.loaded.update(pending.written)


async def _write_back(session: AsyncSession, chunk: Chunk) -> None:
    """Insert the chunk's new places and cases and update the cases it changed, one statement each."""
    pending = _pending(chunk)
    if pending.places:
        await insert_rows(session, _PLACES, pending.places)
    for rows in pending.cases:
        await insert_rows(session, _CASES, rows)
    if pending.changed:
        await (await session.connection()).execute(_UPDATE_CASES, pending.updates("b_case_id"))
    _written(chunk, pending)


def _write_back_parts(dialect: Dialect, chunk: Chunk) -> list[ArrayPart] | None:
    """PostgreSQL: the same writes as parts of the chunk's one statement (None, chunk untouched: write them apart)."""
    pending = _pending(chunk)
    parts = [
        *([insert_part(_PLACES, pending.places, dialect)] if pending.places else []),
        *(insert_part(_CASES, rows, dialect) for rows in pending.cases),
        *([update_part(_CASES, pending.updates("case_id"), "case_id", dialect)] if pending.changed else []),
    ]
    if any(part is None for part in parts):
        return None
    _written(chunk, pending)
    return [part for part in parts if part is not None]


def _case_groups(cases: list[CaseRow]) -> list[list[dict[str, Any]]]:
    """New cases' rows grouped by the columns they name: a JSON column left None is left out (SQL NULL, as the ORM
    leaves it), not stored as ``null``."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for case in cases:
        row = dict(zip(CASE_COLUMNS, _case_values(case), strict=True))
        for name in _JSON_COLUMNS:
            if row[name] is None:
                del row[name]
        groups.setdefault(tuple(row), []).append(row)
    return list(groups.values())

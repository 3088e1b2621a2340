"""Duplicate reports (合并): the open case a new report repeats, looked up in one statement per consumer chunk."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, NamedTuple

from sqlalchemy import CompoundSelect, bindparam, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from services.dispatch import trail
from services.dispatch.context import DispatchContext
from services.dispatch.lifecycle import emit, move
from services.dispatch.models import Case
from shared import topics

OPEN = ("triage", "dispatched", "signed", "in_progress", "extension_requested", "reopened", "returned", "disputed")
SYSTEM = "system:judge"  # the actor of what judging does
CELLS_PER_DEGREE = 100  # map cells of 0.01°: about 1.1 km north-south, 0.85 km east-west at 40°N
MAX_CELLS = 64  # a search box over more cells than this (a radius of several km) reads the kind's window instead
_EARTH_M = 6_371_000
_CHUNK = "dispatch.duplicate_candidates"


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * _EARTH_M * math.asin(math.sqrt(a))


def cell_of(lat: float | None, lon: float | None) -> int | None:
    """The map cell a place is filed under; None without a valid place."""
    if lat is None or lon is None or not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        return None
    return _cell(math.floor(lat * CELLS_PER_DEGREE), math.floor(lon * CELLS_PER_DEGREE))


def _cell(row: int, column: int) -> int:
    return (row + 90 * CELLS_PER_DEGREE) * 400 * CELLS_PER_DEGREE + column + 180 * CELLS_PER_DEGREE


def address_key(address: str | None) -> str | None:
    """An address as stored and compared: without the blanks around it; None when nothing is left."""
    return (address.strip() or None) if address is not None else None


def cells_within(lat: float, lon: float, metres: float) -> list[int] | None:
    """Every cell holding a place within ``metres`` of (lat, lon); None when that is over MAX_CELLS cells, or the
    circle reaches a pole or the 180th meridian (then the caller reads the kind's window)."""
    reach = metres / _EARTH_M  # radians of arc
    dlat = math.degrees(reach)
    if abs(lat) + dlat >= 89.0:
        return None
    # The widest longitude a circle of that arc spans around this latitude, with a margin for rounding.
    dlon = math.degrees(math.asin(min(1.0, math.sin(reach) / math.cos(math.radians(lat))))) * 1.01 + 1e-9
    dlat = dlat * 1.01 + 1e-9
    if abs(lon) + dlon >= 180.0:
        return None
    rows = range(math.floor((lat - dlat) * CELLS_PER_DEGREE), math.floor((lat + dlat) * CELLS_PER_DEGREE) + 1)
    columns = range(math.floor((lon - dlon) * CELLS_PER_DEGREE), math.floor((lon + dlon) * CELLS_PER_DEGREE) + 1)
    if len(rows) * len(columns) > MAX_CELLS:
        return None
    return [_cell(row, column) for row in rows for column in columns]


class StoredCase(NamedTuple):
    """What the search compares of a stored open case; the case itself is loaded only when a report repeats it."""

    id: str
    kind_code: str | None
    status: str
    received_at: datetime
    reporter_key: str | None
    lat: float | None
    lon: float | None
    address: str | None


_COMPARED = tuple(getattr(Case, name) for name in StoredCase._fields)


@dataclass(frozen=True, slots=True)
class Probe:
    """What a report is searched by: its kind and time, its caller, its address and its place."""

    case_id: str
    kind: str
    received_at: datetime
    caller: str | None
    address: str | None
    lat: float | None
    lon: float | None


@dataclass(slots=True)
class ChunkCandidates:
    """What a consumer chunk's reports may duplicate: stored open cases found by their probes, and the chunk's own.

    The stored cases are read once, before the chunk's reports are judged; judging changes none of the compared
    columns of a stored case (a merge only adds to its duplicates and its trail).
    """

    probed: set[str] = field(default_factory=set)  # ids of the reports the stored cases were looked up for
    stored: dict[str, list[StoredCase]] = field(default_factory=dict)  # kind code -> matching open cases
    opened: list[Case] = field(default_factory=list)  # in the order the chunk opened them


async def _lookup(session: AsyncSession, ctx: DispatchContext, probes: Sequence[Probe]) -> dict[str, list[StoredCase]]:
    """The open cases of the probes' kinds, received since the earliest window start, that share a caller, an
    address or a nearby map cell with one of the probes: one statement, each part read off an index of its own."""
    window = timedelta(hours=ctx.settings.duplicate_window_hours)
    since = min(p.received_at for p in probes) - window
    kinds = sorted({p.kind for p in probes})
    cells: dict[str, set[int]] = {}  # kind -> the cells within reach of its probes
    wide: set[str] = set()
    for probe in probes:
        if probe.lat is None or probe.lon is None:
            continue
        near = cells_within(probe.lat, probe.lon, ctx.settings.duplicate_distance_m)
        if near is None:
            wide.add(probe.kind)
        else:
            cells.setdefault(probe.kind, set()).update(near)
    located = sorted(cells.items())
    size = _bucket(len(located))
    located += located[-1:] * (size - len(located))  # a repeated kind reads the same rows again: dropped below
    params: dict[str, object] = {
        "since": since,
        "callers": sorted({p.caller for p in probes if p.caller}),
        "addresses": sorted({p.address for p in probes if p.address}),
        "wide": sorted(wide),
    }
    for i, (kind, reach) in enumerate(located):
        params |= {f"kind_{i}": kind, f"cells_{i}": sorted(reach)}
    found: dict[str, list[StoredCase]] = {kind: [] for kind in kinds}
    seen: set[str] = set()
    # On the session's connection: read before the chunk adds anything, so nothing waits to be flushed, and a
    # statement of columns gains nothing from the ORM's execute, which costs more.
    for row in await (await session.connection()).execute(_lookup_query(size), params):
        stored = StoredCase._make(row)
        of_kind = found.get(stored.kind_code or "")
        if of_kind is not None and stored.status in OPEN and stored.id not in seen:
            seen.add(stored.id)
            of_kind.append(stored)
    return found


def _bucket(count: int) -> int:
    """0, or the next power of two: a few statement shapes, each built and compiled once per process."""
    return 1 << (count - 1).bit_length() if count else 0


@lru_cache(maxsize=16)
def _lookup_query(kinds: int) -> CompoundSelect[Any]:
    """Parts that are each an index range: by caller, by address, the kinds searched too widely for cells, and for
    each of ``kinds`` kinds its cases in the cells near its reports (``cell IN (…) AND kind_code = …``).

    The open-status and kind tests are left to Python for the caller and address parts, so the database cannot
    prefer the status or kind index (a scan of every open case) to the caller's or address's few rows.
    """
    recent = Case.received_at >= bindparam("since", type_=Case.received_at.type)
    return union_all(
        select(*_COMPARED).where(Case.reporter_key.in_(bindparam("callers", expanding=True)), recent),
        select(*_COMPARED).where(Case.address.in_(bindparam("addresses", expanding=True)), recent),
        select(*_COMPARED).where(Case.kind_code.in_(bindparam("wide", expanding=True)), recent, Case.lat.is_not(None)),
        *(
            select(*_COMPARED).where(
                Case.cell.in_(bindparam(f"cells_{i}", expanding=True)),
                Case.kind_code == bindparam(f"kind_{i}", type_=Case.kind_code.type),
                recent,
            )
            for i in range(kinds)
        ),
    )


async def load_candidates(session: AsyncSession, ctx: DispatchContext, probes: Sequence[Probe]) -> None:
    """Look up, in one statement, the stored cases a chunk's reports may duplicate, for ``find_duplicate``."""
    chunk = ChunkCandidates()
    session.info[_CHUNK] = chunk
    if probes:
        chunk.stored = await _lookup(session, ctx, probes)
        chunk.probed = {p.case_id for p in probes}


def opened(session: AsyncSession, case: Case) -> None:
    """Note a case the chunk opened: later reports of the chunk may duplicate it."""
    chunk: ChunkCandidates | None = session.info.get(_CHUNK)
    if chunk is not None:
        chunk.opened.append(case)


def probe_of(case: Case) -> Probe:
    """What ``case`` is searched by."""
    return Probe(
        case_id=case.id,
        kind=case.kind_code or "",
        received_at=case.received_at,
        caller=case.reporter_key,
        address=case.address,
        lat=case.lat,
        lon=case.lon,
    )


async def _stored(
    session: AsyncSession, ctx: DispatchContext, case: Case
) -> tuple[Sequence[StoredCase], Sequence[Case]]:
    """Stored open cases that may repeat the case and the cases opened beside it: from the chunk's load, else looked
    up for this case alone."""
    chunk: ChunkCandidates | None = session.info.get(_CHUNK)
    if chunk is not None and case.id in chunk.probed:
        return chunk.stored.get(case.kind_code or "", []), chunk.opened
    found = await _lookup(session, ctx, [probe_of(case)])
    # Cases opened earlier in the same chunk or transaction are not written yet: look at them too.
    pending = chunk.opened if chunk is not None else [other for other in session.new if isinstance(other, Case)]
    return found.get(case.kind_code or "", []), pending


async def find_duplicate(session: AsyncSession, ctx: DispatchContext, case: Case) -> tuple[Case, str] | None:
    """The oldest open case of the same kind within the window from the same caller, within the distance, or at the
    same address."""
    kind = case.kind_code
    if kind is None:
        return None
    own = case.id
    since = case.received_at - timedelta(hours=ctx.settings.duplicate_window_hours)
    with session.no_autoflush:
        stored, pending = await _stored(session, ctx, case)
    pool: dict[str, StoredCase | Case] = {}
    compared: list[StoredCase | Case] = [*stored, *pending]
    for other in compared:
        if other.kind_code == kind and other.id != own and other.status in OPEN and other.received_at >= since:
            pool[other.id] = other
    candidates = sorted(pool.values(), key=lambda c: (c.received_at, c.id))
    key, lat, lon, address = case.reporter_key, case.lat, case.lon, case.address  # stored trimmed
    found: tuple[StoredCase | Case, str] | None = None
    for other in candidates:
        if key and other.reporter_key == key:
            found = other, "the same caller reported the same kind of problem"
            break
        if lat is not None and lon is not None and other.lat is not None and other.lon is not None:
            gap = distance_m(lat, lon, other.lat, other.lon)
            if gap <= ctx.settings.duplicate_distance_m:
                found = other, f"the same kind of problem {gap:.0f} m away"
                break
        if address and address == other.address:
            found = other, "the same kind of problem at the same address"
            break
    if found is None:
        return None
    other, why = found
    if isinstance(other, Case):
        return other, why
    with session.no_autoflush:  # the chunk's own cases are written at its end, with what it buffered
        first = await session.get(Case, other.id)
    assert first is not None, f"open case {other.id} vanished"
    return first, why


async def merge_into(session: AsyncSession, case: Case, first: Case, *, reason: str, at: datetime) -> None:
    """合并: the duplicate joins the first case instead of creating new work; both show it."""
    case.merged_into = first.id
    case.primary_unit = first.primary_unit
    await move(session, case, "merge", actor=SYSTEM, at=at, detail={"into": first.case_number, "reason": reason})
    first.merged_cases = [*first.merged_cases, case.id]
    await trail.append(
        session,
        case=first,
        at=at,
        actor=SYSTEM,
        action="absorb",
        from_status=first.status,
        to_status=first.status,
        detail={"duplicate": case.case_number, "reason": reason},
    )
    await emit(session, case, topics.CASE_MERGED, at, merged_into=first.id, reason=reason)

"""Duplicate reports (合并): the open case a new report repeats, found in one query per consumer chunk."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, NamedTuple

from sqlalchemy import Select, and_, bindparam, func, or_, select
from sqlalchemy import case as when
from sqlalchemy.ext.asyncio import AsyncSession

from services.dispatch import trail
from services.dispatch.context import DispatchContext
from services.dispatch.lifecycle import emit, move
from services.dispatch.models import Case
from shared import topics

OPEN = ("triage", "dispatched", "signed", "in_progress", "extension_requested", "reopened", "returned", "disputed")
CANDIDATES = 200  # the oldest open cases of the kind a report is compared with
SYSTEM = "system:judge"  # the actor of what judging does
_CHUNK = "dispatch.duplicate_candidates"


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6_371_000 * math.asin(math.sqrt(a))


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


@dataclass(slots=True)
class ChunkCandidates:
    """What a consumer chunk's reports may duplicate: stored open cases per kind, and the cases the chunk opens.

    The stored cases are read once, before the chunk's reports are judged; judging changes none of the compared
    columns of a stored case (a merge only adds to its duplicates and its trail).
    """

    stored: dict[str, list[StoredCase]] = field(default_factory=dict)  # kind code -> open cases, oldest first
    opened: list[Case] = field(default_factory=list)  # in the order the chunk opened them


async def load_candidates(session: AsyncSession, ctx: DispatchContext, reports: Iterable[tuple[str, datetime]]) -> None:
    """Load in one query the stored cases every (kind, received_at) of a chunk may duplicate, for ``find_duplicate``.

    A report looks at the oldest ``CANDIDATES`` open cases of its kind received since its window began. The chunk's
    reports of one kind have different windows, so per kind the query starts at the earliest window and keeps as
    many more rows as fall before the latest one: every report's own oldest ``CANDIDATES`` are among them.
    """
    window = timedelta(hours=ctx.settings.duplicate_window_hours)
    bounds: dict[str, tuple[datetime, datetime]] = {}
    for kind, received_at in reports:
        since = received_at - window
        earliest, latest = bounds.get(kind, (since, since))
        bounds[kind] = (min(earliest, since), max(latest, since))
    chunk = ChunkCandidates(stored={kind: [] for kind in bounds})
    session.info[_CHUNK] = chunk
    if not bounds:
        return
    kinds = list(bounds.items())
    size = _bucket(len(kinds))
    kinds += kinds[-1:] * (size - len(kinds))  # a repeated kind changes nothing: the same rows, the same counts
    params: dict[str, object] = {}
    for i, (kind, (lo, hi)) in enumerate(kinds):
        params |= {f"kind_{i}": kind, f"lo_{i}": lo, f"hi_{i}": hi}
    for row in await session.execute(_candidates_query(size), params):
        stored = StoredCase._make(row)
        chunk.stored[stored.kind_code or ""].append(stored)


def _bucket(kinds: int) -> int:
    """The next power of two: a few statement shapes, each built and compiled once per process."""
    return 1 << (kinds - 1).bit_length()


@lru_cache(maxsize=16)
def _candidates_query(kinds: int) -> Select[Any]:
    """The chunk's candidates for ``kinds`` (kind, earliest window start, latest window start) bound parameters.

    Per kind, the open cases received since its earliest window start, oldest first, ranked; a kind keeps as many
    rows as fall before its latest window start (``early``) plus ``CANDIDATES``. A kind whose two starts are the
    same counts no early rows, as none of its rows in the window is received before its start.
    """
    kind = [bindparam(f"kind_{i}", type_=Case.kind_code.type) for i in range(kinds)]
    lo = [bindparam(f"lo_{i}", type_=Case.received_at.type) for i in range(kinds)]
    hi = [bindparam(f"hi_{i}", type_=Case.received_at.type) for i in range(kinds)]
    in_window = or_(*(and_(Case.kind_code == kind[i], Case.received_at >= lo[i]) for i in range(kinds)))
    early = or_(*(and_(Case.kind_code == kind[i], Case.received_at < hi[i]) for i in range(kinds)))
    ranked = (
        select(
            *_COMPARED,
            func.row_number().over(partition_by=Case.kind_code, order_by=(Case.received_at, Case.id)).label("rank"),
            func.sum(when((early, 1), else_=0)).over(partition_by=Case.kind_code).label("early"),
        )
        .where(Case.status.in_(OPEN), in_window)
        .subquery()
    )
    return (
        select(*(ranked.c[name] for name in StoredCase._fields))
        .where(ranked.c.rank <= ranked.c.early + CANDIDATES)
        .order_by(ranked.c.kind_code, ranked.c.received_at, ranked.c.id)
    )


def opened(session: AsyncSession, case: Case) -> None:
    """Note a case the chunk opened: later reports of the chunk may duplicate it."""
    chunk: ChunkCandidates | None = session.info.get(_CHUNK)
    if chunk is not None:
        chunk.opened.append(case)


async def _stored(session: AsyncSession, case: Case, since: datetime) -> tuple[Sequence[StoredCase], Sequence[Case]]:
    """Stored open cases of the case's kind and the cases opened beside it: from the chunk's load, else queried."""
    chunk: ChunkCandidates | None = session.info.get(_CHUNK)
    if chunk is not None and case.kind_code in chunk.stored:
        return chunk.stored[case.kind_code or ""], chunk.opened
    rows = await session.execute(
        select(*_COMPARED)
        .where(
            Case.kind_code == case.kind_code,
            Case.id != case.id,
            Case.status.in_(OPEN),
            Case.received_at >= since,
        )
        .order_by(Case.received_at, Case.id)
        .limit(CANDIDATES)
    )
    # Cases opened earlier in the same chunk or transaction are not written yet: look at them too.
    pending = chunk.opened if chunk is not None else [other for other in session.new if isinstance(other, Case)]
    return [StoredCase._make(row) for row in rows], pending


async def find_duplicate(session: AsyncSession, ctx: DispatchContext, case: Case) -> tuple[Case, str] | None:
    """An open case of the same kind about the same place, or from the same caller, within the window."""
    kind = case.kind_code
    if kind is None:
        return None
    own = case.id
    since = case.received_at - timedelta(hours=ctx.settings.duplicate_window_hours)
    with session.no_autoflush:
        stored, pending = await _stored(session, case, since)
    pool: dict[str, StoredCase | Case] = {}
    compared: list[StoredCase | Case] = [*stored, *pending]
    for other in compared:
        if other.kind_code == kind and other.id != own and other.status in OPEN and other.received_at >= since:
            pool[other.id] = other
    candidates = sorted(pool.values(), key=lambda c: c.received_at)
    key, lat, lon, address = case.reporter_key, case.lat, case.lon, case.address
    found: tuple[StoredCase | Case, str] | None = None
    for other in candidates[:CANDIDATES]:
        if key and other.reporter_key == key:
            found = other, "the same caller reported the same kind of problem"
            break
        if lat is not None and lon is not None and other.lat is not None and other.lon is not None:
            gap = distance_m(lat, lon, other.lat, other.lon)
            if gap <= ctx.settings.duplicate_distance_m:
                found = other, f"the same kind of problem {gap:.0f} m away"
                break
        if address and other.address and address.strip() == other.address.strip():
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

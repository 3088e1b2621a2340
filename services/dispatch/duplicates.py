"""Duplicate reports (合并): the open case a new report repeats, found in one query per consumer chunk."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, false, func, or_, select
from sqlalchemy import case as when
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

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


@dataclass(slots=True)
class ChunkCandidates:
    """What a consumer chunk's reports may duplicate: stored open cases per kind, and the cases the chunk opens."""

    stored: dict[str, list[Case]] = field(default_factory=dict)  # kind code -> open cases, oldest first
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
    in_window = or_(*(and_(Case.kind_code == k, Case.received_at >= lo) for k, (lo, _) in bounds.items()))
    early = [and_(Case.kind_code == k, Case.received_at < hi) for k, (lo, hi) in bounds.items() if hi > lo]
    ranked = (
        select(
            Case,
            func.row_number().over(partition_by=Case.kind_code, order_by=(Case.received_at, Case.id)).label("rank"),
            func.sum(when((or_(*early) if early else false(), 1), else_=0))
            .over(partition_by=Case.kind_code)
            .label("early"),
        )
        .where(Case.status.in_(OPEN), in_window)
        .subquery()
    )
    row = aliased(Case, ranked)
    query = (
        select(row)
        .where(ranked.c.rank <= ranked.c.early + CANDIDATES)
        .order_by(ranked.c.kind_code, ranked.c.received_at, ranked.c.id)
    )
    with session.no_autoflush:
        for case in (await session.execute(query)).scalars():
            chunk.stored[case.kind_code or ""].append(case)


def opened(session: AsyncSession, case: Case) -> None:
    """Note a case the chunk opened: later reports of the chunk may duplicate it."""
    chunk: ChunkCandidates | None = session.info.get(_CHUNK)
    if chunk is not None:
        chunk.opened.append(case)


async def _stored(session: AsyncSession, case: Case, since: datetime) -> tuple[list[Case], list[Case]]:
    """Stored open cases of the case's kind and the cases opened beside it: from the chunk's load, else queried."""
    chunk: ChunkCandidates | None = session.info.get(_CHUNK)
    if chunk is not None and case.kind_code in chunk.stored:
        return chunk.stored[case.kind_code or ""], chunk.opened
    stored = (
        await session.execute(
            select(Case)
            .where(
                Case.kind_code == case.kind_code,
                Case.id != case.id,
                Case.status.in_(OPEN),
                Case.received_at >= since,
            )
            .order_by(Case.received_at, Case.id)
            .limit(CANDIDATES)
        )
    ).scalars()
    # Cases opened earlier in the same transaction are still pending (flushed once at its end): look at them too.
    return list(stored), [other for other in session.new if isinstance(other, Case)]


async def find_duplicate(session: AsyncSession, ctx: DispatchContext, case: Case) -> tuple[Case, str] | None:
    """An open case of the same kind about the same place, or from the same caller, within the window."""
    if case.kind_code is None:
        return None
    since = case.received_at - timedelta(hours=ctx.settings.duplicate_window_hours)

    def candidate(other: Case) -> bool:
        return (
            other.kind_code == case.kind_code
            and other.id != case.id
            and other.status in OPEN
            and other.received_at >= since
        )

    with session.no_autoflush:
        stored, pending = await _stored(session, case, since)
    candidates = sorted({id(c): c for c in [*stored, *pending] if candidate(c)}.values(), key=lambda c: c.received_at)
    for other in candidates[:CANDIDATES]:
        if case.reporter_key and other.reporter_key == case.reporter_key:
            return other, "the same caller reported the same kind of problem"
        if None not in (case.lat, case.lon, other.lat, other.lon):
            gap = distance_m(case.lat, case.lon, other.lat, other.lon)  # type: ignore[arg-type]
            if gap <= ctx.settings.duplicate_distance_m:
                return other, f"the same kind of problem {gap:.0f} m away"
        if case.address and other.address and case.address.strip() == other.address.strip():
            return other, "the same kind of problem at the same address"
    return None


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

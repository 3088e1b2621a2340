"""Hot spots (one place, one problem, many reports), read from the counters ``spots`` keeps as events arrive."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.evaluation.models import EvaluatedCase, ReportPlace, hotspot_counts, hotspot_reporters
from services.evaluation.repeats import member_of
from services.evaluation.schemas_use import Heat, Hotspot, Point
from services.evaluation.spots import NO_CELL, SOURCES

CLUSTERING = (
    "reports of the same category (so the same kind, or kinds of one category, whatever the wording or source) are "
    "one place when they lie in the same {place_level}; a report without one falls in its GPS square of "
    "{radius:g} m, else in its address (without spaces and punctuation). The window is the window_days local days "
    "ending with the day of until; counters per place, category, kind and day are kept as reports arrive, so a "
    "query reads the window's counters and the members of the hot spots it returns"
)
FORMULA = (
    "heat = reports × growth_factor × reporter_factor × severity; growth = (reports − previous_reports) ÷ "
    "max(previous_reports, 1) against the window before; growth_factor = 1 + 0.5 × clamp(growth, 0, 2); "
    "reporter_factor = 0.5 + 0.5 × reporters ÷ reports, where reporters counts distinct callers by their keyed "
    "pseudonym, and reports without one as distinct (source, address or GPS spot to ~10 m); severity = mean "
    "urgency weight (normal 1, urgent 1.5, emergency 2)"
)
_EARTH_M = 6_371_000
_IN_CHUNK = 500  # cells per IN (...) list


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * _EARTH_M * math.asin(math.sqrt(a))


@dataclass
class Tally:
    """One place and category summed over the window (``current``) and the window before."""

    category: str
    cell: str
    current: int = 0
    previous: int = 0
    severity_sum: float = 0.0
    kinds: Counter[str] = field(default_factory=Counter)
    sources: Counter[str] = field(default_factory=Counter)
    reporters: int = 0


def window_days(until: datetime, days: int, tz: ZoneInfo) -> tuple[date, date, date]:
    """First day of the window before, first and last day of the window (local days, the last holds ``until``)."""
    last = until.astimezone(tz).date()
    first = last - timedelta(days=days - 1)
    return first - timedelta(days=days), first, last


async def tallies(
    session: AsyncSession, *, level: str, before: date, first: date, last: date, min_reports: int = 1
) -> dict[tuple[str, str], Tally]:
    """Places with at least ``min_reports`` reports in [first, last], summed, with their count in [before, first)."""
    c = hotspot_counts.c
    reports = func.sum(c.reports)
    hot = (
        select(c.category_code, c.cell)
        .where(c.level == level, c.day >= first, c.day <= last, c.cell != NO_CELL)
        .group_by(c.category_code, c.cell)
        .having(reports >= min_reports)
        .subquery()
    )
    now = case((c.day >= first, 1), else_=0).label("now")
    sums = [reports, func.sum(c.severity_sum), *(func.sum(c[f"from_{s}"]) for s in SOURCES)]
    rows = await session.execute(
        select(c.category_code, c.cell, c.kind_code, now, *sums)
        .join(hot, (hot.c.category_code == c.category_code) & (hot.c.cell == c.cell))
        .where(c.level == level, c.day >= before, c.day <= last)
        .group_by(c.category_code, c.cell, c.kind_code, now)
    )
    found: dict[tuple[str, str], Tally] = {}
    for category, cell, kind, in_window, n, severity, *by_source in rows.all():
        tally = found.setdefault((category, cell), Tally(category=category, cell=cell))
        if not in_window:
            tally.previous += int(n)
            continue
        tally.current += int(n)
        tally.severity_sum += float(severity)
        if n:
            tally.kinds[kind] += int(n)
        for source, k in zip(SOURCES, by_source, strict=True):
            if k:
                tally.sources[source] += int(k)
    return found


async def count_reporters(
    session: AsyncSession, found: Sequence[Tally], *, level: str, first: date, last: date
) -> None:
    """Distinct reporters of each place in the window, read for the given places only."""
    r = hotspot_reporters.c
    by_key = {(t.category, t.cell): t for t in found}
    cells = sorted({t.cell for t in found})
    for start in range(0, len(cells), _IN_CHUNK):
        rows = await session.execute(
            select(r.category_code, r.cell, func.count(func.distinct(r.reporter)))
            .where(r.level == level, r.day >= first, r.day <= last, r.reports > 0)
            .where(r.cell.in_(cells[start : start + _IN_CHUNK]))
            .group_by(r.category_code, r.cell)
        )
        for category, cell, n in rows.all():
            if (category, cell) in by_key:
                by_key[(category, cell)].reporters = int(n)


def heat_of(tally: Tally) -> Heat:
    """The heat index of a place's reports in the window, given how many it had in the window before."""
    n, previous = tally.current, tally.previous
    growth = (n - previous) / max(previous, 1)
    growth_factor = 1 + 0.5 * min(max(growth, 0.0), 2.0)
    reporter_factor = 0.5 + 0.5 * tally.reporters / n
    severity = tally.severity_sum / n
    return Heat(
        index=round(n * growth_factor * reporter_factor * severity, 2),
        reports=n,
        previous_reports=previous,
        growth=round(growth, 3),
        growth_factor=round(growth_factor, 3),
        reporters=tally.reporters,
        reporter_factor=round(reporter_factor, 3),
        severity=round(severity, 3),
    )


def _rank(pair: tuple[Tally, Heat]) -> tuple[float, int, str, str]:
    return (-pair[1].index, -pair[0].current, pair[0].category, pair[0].cell)


async def candidates(
    session: AsyncSession, *, level: str, before: date, first: date, last: date, min_reports: int, limit: int
) -> list[tuple[Tally, Heat]]:
    """The ``limit`` hottest places with at least ``min_reports`` reports in the window, hottest first.

    Distinct reporters are read in batches, best upper bound first (as if every report came from another
    reporter), and only until no place left could still enter the top ``limit``.
    """
    places = await tallies(session, level=level, before=before, first=first, last=last, min_reports=min_reports)
    pending = sorted(places.values(), key=lambda t: _rank((t, _bound(t))))
    ranked: list[tuple[Tally, Heat]] = []
    for start in range(0, len(pending), _IN_CHUNK):
        if len(ranked) >= limit and ranked[limit - 1][1].index > _bound(pending[start]).index:
            break
        batch = pending[start : start + _IN_CHUNK]
        await count_reporters(session, batch, level=level, first=first, last=last)
        ranked = sorted([*ranked, *((t, heat_of(t)) for t in batch)], key=_rank)[:limit]
    return ranked


def _bound(tally: Tally) -> Heat:
    """The highest heat the place could have: every report from a different reporter."""
    return heat_of(replace(tally, reporters=tally.current))


def _centre(places: Sequence[ReportPlace | None]) -> tuple[Point | None, float | None]:
    located = [(p.lat, p.lon) for p in places if p is not None and p.lat is not None and p.lon is not None]
    if not located:
        return None, None
    lat = sum(p[0] for p in located) / len(located)
    lon = sum(p[1] for p in located) / len(located)
    radius = max(distance_m(lat, lon, p[0], p[1]) for p in located)
    return Point(lat=round(lat, 6), lon=round(lon, 6)), round(radius, 1)


async def hotspot_of(
    session: AsyncSession, tally: Tally, heat: Heat, *, level: str, first: date, last: date
) -> Hotspot:
    """A ranked place with its member cases (read for the returned hot spots only)."""
    cell_column = EvaluatedCase.spot_grid if level == "grid" else EvaluatedCase.spot_community
    rows = await session.execute(
        select(EvaluatedCase, ReportPlace)
        .outerjoin(ReportPlace, ReportPlace.case_id == EvaluatedCase.case_id)
        .where(EvaluatedCase.spot_category == tally.category, cell_column == tally.cell)
        .where(EvaluatedCase.spot_day >= first, EvaluatedCase.spot_day <= last)
        .order_by(EvaluatedCase.judged_at, EvaluatedCase.case_id)
    )
    members = list(rows.all())
    names = Counter(c.place_name for c, _ in members if c.place_name)
    centre, spread = _centre([p for _, p in members])
    return Hotspot(
        category_code=tally.category,
        kind_code=tally.kinds.most_common(1)[0][0],
        kind_codes=dict(tally.kinds.most_common()),
        place_code=tally.cell,
        place_name=names.most_common(1)[0][0] if names else None,
        centre=centre,
        radius_m=spread,
        reports=tally.current,
        sources=dict(tally.sources.most_common()),
        first_at=members[0][0].judged_at,
        last_at=members[-1][0].judged_at,
        heat=heat,
        case_ids=[c.case_id for c, _ in members],
        members=[member_of(c, p) for c, p in members],
    )


async def hotspots(
    session: AsyncSession,
    *,
    until: datetime,
    days: int,
    min_reports: int,
    place_level: str,
    tz: ZoneInfo,
    limit: int,
) -> list[Hotspot]:
    """Places with at least ``min_reports`` reports in the window, hottest first."""
    before, first, last = window_days(until, days, tz)
    ranked = await candidates(
        session, level=place_level, before=before, first=first, last=last, min_reports=min_reports, limit=limit
    )
    return [await hotspot_of(session, tally, heat, level=place_level, first=first, last=last) for tally, heat in ranked]


def hotspots_per_kind(places: Sequence[Tally]) -> Counter[str]:
    """How many places each kind leads (the kind most of a place's reports carry)."""
    return Counter(t.kinds.most_common(1)[0][0] for t in places if t.kinds)

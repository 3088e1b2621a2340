"""Hot spots (one place, one problem, many reports) and repeat complaints (the same matter from the same spot)."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.evaluation.models import EvaluatedCase, ReportPlace
from services.evaluation.schemas_use import Heat, Hotspot, Member, Point, RepeatComplaint

URGENCY_WEIGHT = {"normal": 1.0, "urgent": 1.5, "emergency": 2.0}
CLUSTERING = (
    "reports of the same category (so the same kind, or kinds of one category, whatever the wording or source) are "
    "one place when they lie in the same {place_level}, name the same address (without spaces and punctuation), or "
    "their GPS points are within {radius:g} m of each other; links chain (single linkage)"
)
FORMULA = (
    "heat = reports × growth_factor × reporter_factor × severity; growth = (reports − previous_reports) ÷ "
    "max(previous_reports, 1) against the window before; growth_factor = 1 + 0.5 × clamp(growth, 0, 2); "
    "reporter_factor = 0.5 + 0.5 × reporters ÷ reports, where reporters estimates distinct reporters as distinct "
    "(source, address or GPS spot to ~10 m) since case events carry no caller identity; severity = mean urgency "
    "weight (normal 1, urgent 1.5, emergency 2)"
)
REPEAT_RULE = (
    "two or more reports of the same kind naming the same spot (the address without spaces and punctuation, or a "
    "GPS point to ~10 m) within the window; after_closing counts reports made after an earlier one of the group "
    "was closed. The same caller cannot be recognised: case events carry no caller pseudonym."
)
_EARTH_M = 6_371_000
_M_PER_DEGREE = 111_320


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * _EARTH_M * math.asin(math.sqrt(a))


@dataclass(frozen=True, slots=True)
class Report:
    """A judged case with where it was reported."""

    case: EvaluatedCase
    address: str | None
    place_key: str | None
    lat: float | None
    lon: float | None

    def member(self) -> Member:
        c = self.case
        return Member(
            case_id=c.case_id,
            case_number=c.case_number,
            source=c.source,
            kind_code=c.kind_code,
            status=c.status,
            judged_at=c.judged_at,
            grid_code=c.grid_code,
            community_code=c.community_code,
            address=self.address,
            lat=self.lat,
            lon=self.lon,
        )

    @property
    def has_point(self) -> bool:
        return self.lat is not None and self.lon is not None

    def reporter(self) -> tuple[str, str]:
        """An estimate of who reported: the same source at the same spot is taken for the same reporter."""
        return self.case.source, self.place_key or self.case.case_id


def _report(case: EvaluatedCase, address: str | None, key: str | None, lat: float | None, lon: float | None) -> Report:
    return Report(case=case, address=address, place_key=key, lat=lat, lon=lon)


async def reports_between(session: AsyncSession, since: datetime, until: datetime) -> list[Report]:
    """Judged cases with a kind in [since, until), with their report's place."""
    rows = await session.execute(
        select(EvaluatedCase, ReportPlace.address, ReportPlace.place_key, ReportPlace.lat, ReportPlace.lon)
        .outerjoin(ReportPlace, ReportPlace.case_id == EvaluatedCase.case_id)
        .where(
            EvaluatedCase.judged_at >= since,
            EvaluatedCase.judged_at < until,
            EvaluatedCase.kind_code.is_not(None),
        )
        .order_by(EvaluatedCase.judged_at, EvaluatedCase.case_id)
    )
    return [_report(*row) for row in rows.all()]


class _Links:
    """Union-find over report indexes."""

    def __init__(self, size: int) -> None:
        self.parent = list(range(size))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def join(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def cluster(reports: Sequence[Report], *, radius_m: float, place_level: str) -> list[list[Report]]:
    """Group reports of one category that share a place, an address, or lie within the radius of each other."""
    by_category: dict[str, list[Report]] = defaultdict(list)
    for report in reports:
        by_category[report.case.category_code or report.case.kind_code or ""].append(report)
    clusters: list[list[Report]] = []
    for group in by_category.values():
        links = _Links(len(group))
        first_at: dict[tuple[str, str], int] = {}
        for i, report in enumerate(group):
            area = report.case.grid_code if place_level == "grid" else report.case.community_code
            for key in (("area", area), ("addr", report.place_key if report.address else None)):
                if key[1] is None:
                    continue
                known = first_at.setdefault((key[0], key[1]), i)
                links.join(known, i)
        _link_points(group, links, radius_m)
        members: dict[int, list[Report]] = defaultdict(list)
        for i, report in enumerate(group):
            members[links.find(i)].append(report)
        clusters.extend(members.values())
    return clusters


def _link_points(group: Sequence[Report], links: _Links, radius_m: float) -> None:
    """Join reports whose GPS points are within the radius, looking only at neighbouring cells of a radius grid."""
    points = [i for i, r in enumerate(group) if r.has_point]
    if not points:
        return
    widest = max(abs(group[i].lat or 0.0) for i in points)
    lat_step = radius_m / _M_PER_DEGREE
    lon_step = radius_m / (_M_PER_DEGREE * max(math.cos(math.radians(widest)), 0.01))
    cells: dict[tuple[int, int], list[int]] = defaultdict(list)
    for i in points:
        r = group[i]
        assert r.lat is not None and r.lon is not None
        cell = (math.floor(r.lat / lat_step), math.floor(r.lon / lon_step))
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                for j in cells.get((cell[0] + dy, cell[1] + dx), ()):
                    other = group[j]
                    assert other.lat is not None and other.lon is not None
                    if distance_m(r.lat, r.lon, other.lat, other.lon) <= radius_m:
                        links.join(i, j)
        cells[cell].append(i)


def heat_of(current: Sequence[Report], previous: int) -> Heat:
    """The heat index of a cluster's reports in the window, given how many it had in the window before."""
    n = len(current)
    growth = (n - previous) / max(previous, 1)
    growth_factor = 1 + 0.5 * min(max(growth, 0.0), 2.0)
    reporters = len({r.reporter() for r in current})
    reporter_factor = 0.5 + 0.5 * reporters / n
    severity = sum(URGENCY_WEIGHT.get(r.case.urgency, 1.0) for r in current) / n
    return Heat(
        index=round(n * growth_factor * reporter_factor * severity, 2),
        reports=n,
        previous_reports=previous,
        growth=round(growth, 3),
        growth_factor=round(growth_factor, 3),
        reporters=reporters,
        reporter_factor=round(reporter_factor, 3),
        severity=round(severity, 3),
    )


def _centre(current: Sequence[Report]) -> tuple[Point | None, float | None]:
    located = [(r.lat, r.lon) for r in current if r.lat is not None and r.lon is not None]
    if not located:
        return None, None
    lat = sum(p[0] for p in located) / len(located)
    lon = sum(p[1] for p in located) / len(located)
    radius = max(distance_m(lat, lon, p[0], p[1]) for p in located)
    return Point(lat=round(lat, 6), lon=round(lon, 6)), round(radius, 1)


async def hotspots(
    session: AsyncSession,
    *,
    until: datetime,
    window_days: int,
    min_reports: int,
    radius_m: float,
    place_level: str,
    limit: int,
) -> list[Hotspot]:
    """Clusters with at least ``min_reports`` reports in the window, hottest first."""
    window = timedelta(days=window_days)
    since = until - window
    found: list[Hotspot] = []
    for members in cluster(
        await reports_between(session, since - window, until), radius_m=radius_m, place_level=place_level
    ):
        current = [r for r in members if r.case.judged_at >= since]
        if len(current) < min_reports:
            continue
        kinds = Counter(r.case.kind_code or "" for r in current)
        areas = Counter((r.case.grid_code if place_level == "grid" else r.case.community_code) for r in current)
        area, _ = areas.most_common(1)[0]
        names = Counter(r.case.place_name for r in current if r.case.place_name)
        centre, spread = _centre(current)
        found.append(
            Hotspot(
                category_code=current[0].case.category_code or "",
                kind_code=kinds.most_common(1)[0][0],
                kind_codes=dict(kinds.most_common()),
                place_code=area,
                place_name=names.most_common(1)[0][0] if names else None,
                centre=centre,
                radius_m=spread,
                reports=len(current),
                sources=dict(Counter(r.case.source for r in current).most_common()),
                first_at=current[0].case.judged_at,
                last_at=current[-1].case.judged_at,
                heat=heat_of(current, len(members) - len(current)),
                case_ids=[r.case.case_id for r in current],
                members=[r.member() for r in current],
            )
        )
    found.sort(key=lambda h: (-h.heat.index, -h.reports, h.first_at))
    return found[:limit]


async def repeat_groups(
    session: AsyncSession, *, since: datetime, until: datetime, min_cases: int, limit: int | None = None
) -> list[tuple[str, str, int]]:
    """(kind, place key, cases) of the repeat groups in [since, until), largest first."""
    n = func.count().label("n")
    query = (
        select(EvaluatedCase.kind_code, ReportPlace.place_key, n)
        .join(ReportPlace, ReportPlace.case_id == EvaluatedCase.case_id)
        .where(
            EvaluatedCase.judged_at >= since,
            EvaluatedCase.judged_at < until,
            EvaluatedCase.kind_code.is_not(None),
            ReportPlace.place_key.is_not(None),
        )
        .group_by(EvaluatedCase.kind_code, ReportPlace.place_key)
        .having(func.count() >= min_cases)
        .order_by(n.desc(), EvaluatedCase.kind_code, ReportPlace.place_key)
    )
    if limit is not None:
        query = query.limit(limit)
    return [(str(kind), str(key), int(count)) for kind, key, count in (await session.execute(query)).all()]


async def repeat_complaints(
    session: AsyncSession, *, since: datetime, until: datetime, min_cases: int, limit: int
) -> list[RepeatComplaint]:
    """The same kind of matter reported again from the same spot, with the cases and what became of them."""
    found: list[RepeatComplaint] = []
    for kind, key, _count in await repeat_groups(session, since=since, until=until, min_cases=min_cases, limit=limit):
        rows = await session.execute(
            select(EvaluatedCase, ReportPlace.address, ReportPlace.place_key, ReportPlace.lat, ReportPlace.lon)
            .join(ReportPlace, ReportPlace.case_id == EvaluatedCase.case_id)
            .where(
                EvaluatedCase.judged_at >= since,
                EvaluatedCase.judged_at < until,
                EvaluatedCase.kind_code == kind,
                ReportPlace.place_key == key,
            )
            .order_by(EvaluatedCase.judged_at, EvaluatedCase.case_id)
        )
        members = [_report(*row) for row in rows.all()]
        closings = [r.case.closed_at for r in members if r.case.closed_at is not None]
        after = sum(1 for r in members if any(at < r.case.judged_at for at in closings))
        found.append(
            RepeatComplaint(
                kind_code=kind,
                place=key,
                address=next((r.address for r in members if r.address), None),
                cases=len(members),
                after_closing=after,
                reopened_rounds=sum(r.case.round for r in members),
                first_at=members[0].case.judged_at,
                last_at=members[-1].case.judged_at,
                members=[r.member() for r in members],
            )
        )
    return found

"""Repeat complaints (重复投诉): the same matter again from the same caller or the same spot."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal, TypeVar

from sqlalchemy import Select, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from services.evaluation.models import EvaluatedCase, ReportPlace
from services.evaluation.schemas_use import Member, RepeatComplaint, RepeatMark

Rule = Literal["same_caller", "same_place"]
AnySelect = TypeVar("AnySelect", bound=Select[*tuple[Any, ...]])
RULES: tuple[Rule, ...] = ("same_caller", "same_place")
REPEAT_RULE = (
    "two or more reports of the same kind within the window, from the same caller (same_caller: the keyed caller "
    "pseudonym dispatch puts on case events, never the phone) or naming the same spot (same_place: the address "
    "without spaces and punctuation, or a GPS point to ~10 m); each group says which rule matched, and a report "
    "can belong to one group of each rule. after_closing counts reports made after an earlier one of the group "
    "was closed; unit keeps the groups with at least one case handled by that unit"
)
_SHOWN_KEY = 12  # characters of the caller pseudonym shown to tell groups apart


def _key_column(rule: Rule) -> InstrumentedAttribute[str | None]:
    return EvaluatedCase.caller_key if rule == "same_caller" else ReportPlace.place_key


def _within(query: AnySelect, *, since: datetime, until: datetime) -> AnySelect:
    return query.outerjoin(ReportPlace, ReportPlace.case_id == EvaluatedCase.case_id).where(
        EvaluatedCase.judged_at >= since, EvaluatedCase.judged_at < until, EvaluatedCase.kind_code.is_not(None)
    )


async def repeat_groups(
    session: AsyncSession,
    *,
    since: datetime,
    until: datetime,
    min_cases: int,
    rule: Rule = "same_place",
    unit: str | None = None,
    limit: int | None = None,
) -> list[tuple[str, str, int]]:
    """(kind, caller or place key, cases) of the repeat groups of one rule in [since, until), largest first."""
    key = _key_column(rule)
    n = func.count().label("n")
    query = _within(select(EvaluatedCase.kind_code, key, n), since=since, until=until).where(key.is_not(None))
    query = query.group_by(EvaluatedCase.kind_code, key).having(func.count() >= min_cases)
    if unit is not None:
        query = query.having(func.sum(case((EvaluatedCase.primary_unit == unit, 1), else_=0)) > 0)
    query = query.order_by(n.desc(), EvaluatedCase.kind_code, key)
    if limit is not None:
        query = query.limit(limit)
    return [(str(kind), str(k), int(count)) for kind, k, count in (await session.execute(query)).all()]


def member_of(c: EvaluatedCase, place: ReportPlace | None) -> Member:
    """A case as a member of a group."""
    return Member(
        case_id=c.case_id,
        case_number=c.case_number,
        source=c.source,
        kind_code=c.kind_code,
        status=c.status,
        primary_unit=c.primary_unit,
        judged_at=c.judged_at,
        grid_code=c.grid_code,
        community_code=c.community_code,
        address=place.address if place else None,
        lat=place.lat if place else None,
        lon=place.lon if place else None,
    )


async def repeat_complaints(
    session: AsyncSession, *, since: datetime, until: datetime, min_cases: int, unit: str | None, limit: int
) -> list[RepeatComplaint]:
    """Both rules' groups, largest first, with the cases and what became of them."""
    found: list[RepeatComplaint] = []
    for rule in RULES:
        groups = await repeat_groups(
            session, since=since, until=until, min_cases=min_cases, rule=rule, unit=unit, limit=limit
        )
        for kind, key, _count in groups:
            rows = await session.execute(
                _within(select(EvaluatedCase, ReportPlace), since=since, until=until)
                .where(EvaluatedCase.kind_code == kind, _key_column(rule) == key)
                .order_by(EvaluatedCase.judged_at, EvaluatedCase.case_id)
            )
            members = [(c, place) for c, place in rows.all()]
            closings = [c.closed_at for c, _ in members if c.closed_at is not None]
            found.append(
                RepeatComplaint(
                    rule=rule,
                    kind_code=kind,
                    place=key if rule == "same_place" else f"caller:{key[:_SHOWN_KEY]}",
                    address=next((p.address for _, p in members if p is not None and p.address), None),
                    cases=len(members),
                    units=sorted({c.primary_unit for c, _ in members if c.primary_unit}),
                    after_closing=sum(1 for c, _ in members if any(at < c.judged_at for at in closings)),
                    reopened_rounds=sum(c.round for c, _ in members),
                    first_at=members[0][0].judged_at,
                    last_at=members[-1][0].judged_at,
                    members=[member_of(c, p) for c, p in members],
                )
            )
    found.sort(key=lambda item: (-item.cases, item.first_at, item.rule))
    return found[:limit]


async def repeat_marks(session: AsyncSession, c: EvaluatedCase, *, window_days: int) -> list[RepeatMark]:
    """Whether this case repeats earlier ones of its kind in the window, by each rule that matches."""
    if c.kind_code is None:
        return []
    place = await session.get(ReportPlace, c.case_id)
    keys: dict[Rule, str | None] = {"same_caller": c.caller_key, "same_place": place.place_key if place else None}
    marks: list[RepeatMark] = []
    for rule, key in keys.items():
        if key is None:
            continue
        earlier = await session.execute(
            _within(
                select(EvaluatedCase.case_number), since=c.judged_at - timedelta(days=window_days), until=c.judged_at
            )
            .where(EvaluatedCase.kind_code == c.kind_code, _key_column(rule) == key, EvaluatedCase.case_id != c.case_id)
            .order_by(EvaluatedCase.judged_at)
        )
        numbers = list(earlier.scalars())
        if numbers:
            marks.append(RepeatMark(rule=rule, repeat_of=numbers, window_days=window_days))
    return marks

"""Evaluating cases (评) and using what they tell (用): feedback, verdicts, roll-ups, hot spots."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Table, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from services.evaluation.models import EvaluatedCase, Feedback, UnitDayStats, messaging
from services.evaluation.schemas import BottomUp, FeedbackCreate, Hotspot, Rate, UnitMetrics
from shared import topics
from shared.events import CloudEvent, utcnow
from shared.outbox import add_event
from shared.problems import Conflict, NotFound

SOURCE = "/jiesu/evaluation"
COUNTERS = (
    "dispatched",
    "signed",
    "signed_on_time",
    "completed",
    "completed_on_time",
    "feedback",
    "resolved",
    "satisfied",
    "basically_satisfied",
    "dissatisfied",
    "reopened",
    "overdue",
    "bottom_up_ratings",
    "bottom_up_score_sum",
)
DEFINITIONS = {
    "response_rate": "响应率: cases signed for (签收) / cases dispatched",
    "resolution_rate": "解决率: call-backs answering resolved / call-backs",
    "satisfaction_rate": "满意率: satisfied + basically satisfied / call-backs",
    "on_time_sign_rate": "signed before the sign deadline / signed",
    "on_time_completion_rate": "completed before the completion deadline / completed",
    "overdue": "cases whose completion deadline passed before they were completed",
    "bottom_up_rating": "mean of towns' 1-5 ratings of the department after a whistle (吹哨报到), by rating day",
    "period": "cases count in the period (Asia/Shanghai day) in which they were dispatched",
}


async def bump(session: AsyncSession, *, unit: str, day: date, **increments: int) -> None:
    """Add to a unit's counters for a day, creating the row on first use (atomic per statement)."""
    table = UnitDayStats.__table__
    assert isinstance(table, Table)
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    insert = postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
    await session.execute(insert.values(unit_code=unit, day=day, **dict.fromkeys(COUNTERS, 0)).on_conflict_do_nothing())
    await session.execute(
        update(table)
        .where(table.c.unit_code == unit, table.c.day == day)
        .values({name: table.c[name] + amount for name, amount in increments.items()})
    )


async def on_judged(session: AsyncSession, data: dict[str, Any], at: datetime) -> None:
    """A judged case enters evaluation (for hot spots even before it is dispatched)."""
    if await session.get(EvaluatedCase, data["case_id"]) is not None:
        return
    territory = data.get("territory") or {}
    codes = territory.get("codes") or {}
    names = territory.get("names") or {}
    session.add(
        EvaluatedCase(
            case_id=data["case_id"],
            case_number=data["case_number"],
            source=data["source"],
            kind_code=data.get("kind_code"),
            category_code=data.get("category_code"),
            street_code=codes.get("street"),
            grid_code=codes.get("grid"),
            place_name=names.get("community") or names.get("street"),
            status=data["status"],
            judged_at=at,
            round=0,
        )
    )


async def _case(session: AsyncSession, case_id: str) -> EvaluatedCase | None:
    return (
        await session.execute(select(EvaluatedCase).where(EvaluatedCase.case_id == case_id).with_for_update())
    ).scalar_one_or_none()


async def on_dispatched(session: AsyncSession, data: dict[str, Any], at: datetime, tz: ZoneInfo) -> None:
    """A case reached a unit: it counts as dispatched for that unit, on that day."""
    case = await _case(session, data["case_id"])
    if case is None:
        await on_judged(session, data, at)
        await session.flush()
        case = await _case(session, data["case_id"])
        assert case is not None
    case.primary_unit = data["primary_unit"]
    case.kind_code = data.get("kind_code")
    case.status = data["status"]
    case.dispatched_at = at
    case.period_day = at.astimezone(tz).date()
    case.signed_at = None
    await bump(session, unit=case.primary_unit or "", day=case.period_day, dispatched=1)


async def on_signed(session: AsyncSession, data: dict[str, Any], at: datetime) -> None:
    """签收: the first sign of a dispatch counts towards the response rate."""
    case = await _case(session, data["case_id"])
    if case is None or case.period_day is None:
        return
    first = case.signed_at is None
    case.status = data["status"]
    if first and case.round == 0:
        case.signed_at = at
        await bump(
            session,
            unit=case.primary_unit or "",
            day=case.period_day,
            signed=1,
            signed_on_time=int(bool(data.get("on_time"))),
        )


async def on_completed(session: AsyncSession, data: dict[str, Any], at: datetime) -> None:
    """办结: the case now waits for the call-back."""
    case = await _case(session, data["case_id"])
    if case is None or case.period_day is None:
        return
    case.status = "completed"
    case.completed_at = at
    if case.round == 0:
        await bump(
            session,
            unit=case.primary_unit or "",
            day=case.period_day,
            completed=1,
            completed_on_time=int(bool(data.get("on_time"))),
        )


async def on_overdue(session: AsyncSession, data: dict[str, Any]) -> None:
    """A missed completion deadline counts against the unit (once per case)."""
    case = await _case(session, data["case_id"])
    if case is None or case.period_day is None or data.get("deadline") != "complete" or case.overdue_counted:
        return
    case.overdue_counted = True
    await bump(session, unit=case.primary_unit or "", day=case.period_day, overdue=1)


async def on_whistle_rated(session: AsyncSession, data: dict[str, Any], at: datetime, tz: ZoneInfo) -> None:
    """A town rated a department it called: the bottom-up share of that department's score."""
    await bump(
        session,
        unit=str(data["unit_code"]),
        day=at.astimezone(tz).date(),
        bottom_up_ratings=1,
        bottom_up_score_sum=int(data["score"]),
    )


async def on_status(session: AsyncSession, data: dict[str, Any]) -> None:
    """Any other case event: follow the status."""
    case = await _case(session, data["case_id"])
    if case is not None:
        case.status = data["status"]


async def on_reopened(session: AsyncSession, data: dict[str, Any]) -> None:
    """重办: the next completion starts a new call-back round."""
    case = await _case(session, data["case_id"])
    if case is None or case.period_day is None:
        return
    case.status = "reopened"
    case.round += 1
    await bump(session, unit=case.primary_unit or "", day=case.period_day, reopened=1)


async def record_feedback(session: AsyncSession, body: FeedbackCreate) -> Feedback:
    """Record the call-back answer for the current round and emit the verdict (close or reopen)."""
    case = await _case(session, body.case_id)
    if case is None:
        raise NotFound(f"evaluation has no case {body.case_id} (yet)", field="case_id")
    already = (
        await session.execute(select(Feedback).where(Feedback.case_id == case.case_id, Feedback.round == case.round))
    ).scalar_one_or_none()
    if already is not None:
        raise Conflict(
            f"feedback for round {case.round} of case {case.case_number} was recorded at {already.recorded_at}",
            field="case_id",
            current_status=case.status,
        )
    if case.status != "completed":
        raise Conflict(
            f"case {case.case_number} is {case.status}; feedback is taken once it is completed",
            field="case_id",
            current_status=case.status,
        )
    verdict = "closed" if body.resolved and body.satisfaction != "dissatisfied" else "reopened"
    now = utcnow()
    row = Feedback(
        case_id=case.case_id,
        round=case.round,
        unit_code=case.primary_unit,
        resolved=body.resolved,
        satisfaction=body.satisfaction,
        comment=body.comment,
        verdict=verdict,
        recorded_at=now,
    )
    session.add(row)
    case.status = f"verdict:{verdict}"
    assert case.period_day is not None
    await bump(
        session,
        unit=case.primary_unit or "",
        day=case.period_day,
        feedback=1,
        resolved=int(body.resolved),
        **{body.satisfaction: 1},
    )
    await add_event(
        session,
        messaging,
        topic=topics.VERDICTS,
        aggregatetype="case",
        aggregateid=case.case_id,
        event=CloudEvent(
            type=topics.VERDICT_RECORDED,
            source=SOURCE,
            subject=case.case_id,
            time=now,
            data={
                "case_id": case.case_id,
                "case_number": case.case_number,
                "round": case.round,
                "verdict": verdict,
                "unit_code": case.primary_unit,
                "feedback": {
                    "resolved": body.resolved,
                    "satisfaction": body.satisfaction,
                    "comment": body.comment,
                },
            },
        ),
    )
    return row


async def evaluation_of(session: AsyncSession, case_id: str) -> tuple[EvaluatedCase, list[Feedback]]:
    """A case and its feedback rounds."""
    case = await session.get(EvaluatedCase, case_id)
    if case is None:
        raise NotFound(f"evaluation has no case {case_id} (yet)", field="case_id")
    rows = await session.execute(select(Feedback).where(Feedback.case_id == case_id).order_by(Feedback.round))
    return case, list(rows.scalars())


def _rate(numerator: int, denominator: int) -> Rate:
    return Rate(
        value=round(numerator / denominator, 4) if denominator else None,
        numerator=numerator,
        denominator=denominator,
    )


def _period(day: date, grouping: str) -> str:
    return {"day": day.isoformat(), "month": day.strftime("%Y-%m")}.get(grouping, "all")


async def metrics(
    session: AsyncSession, *, unit: str | None, grouping: str, date_from: date | None, date_to: date | None
) -> list[UnitMetrics]:
    """The three rates per unit and period, from the daily roll-ups."""
    query = select(UnitDayStats)
    if unit:
        query = query.where(UnitDayStats.unit_code == unit)
    if date_from:
        query = query.where(UnitDayStats.day >= date_from)
    if date_to:
        query = query.where(UnitDayStats.day <= date_to)
    totals: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: dict.fromkeys(COUNTERS, 0))
    for row in (await session.execute(query)).scalars():
        bucket = totals[(row.unit_code, _period(row.day, grouping))]
        for name in COUNTERS:
            bucket[name] += getattr(row, name)
    items = []
    for (unit_code, period), c in sorted(totals.items()):
        items.append(
            UnitMetrics(
                unit_code=unit_code,
                period=period,
                dispatched=c["dispatched"],
                signed=c["signed"],
                completed=c["completed"],
                feedback=c["feedback"],
                reopened=c["reopened"],
                response_rate=_rate(c["signed"], c["dispatched"]),
                resolution_rate=_rate(c["resolved"], c["feedback"]),
                satisfaction_rate=_rate(c["satisfied"] + c["basically_satisfied"], c["feedback"]),
                on_time_sign_rate=_rate(c["signed_on_time"], c["signed"]),
                on_time_completion_rate=_rate(c["completed_on_time"], c["completed"]),
                overdue=c["overdue"],
                bottom_up_rating=BottomUp(
                    mean=round(c["bottom_up_score_sum"] / c["bottom_up_ratings"], 2)
                    if c["bottom_up_ratings"]
                    else None,
                    ratings=c["bottom_up_ratings"],
                ),
            )
        )
    return items


async def hotspots(session: AsyncSession, *, window_days: int, min_reports: int, limit: int) -> list[Hotspot]:
    """Kinds of problem reported at least ``min_reports`` times in one grid (or street) within the window."""
    since = utcnow() - timedelta(days=window_days)
    place = func.coalesce(EvaluatedCase.grid_code, EvaluatedCase.street_code)
    groups = (
        await session.execute(
            select(EvaluatedCase.kind_code, place.label("place"), func.count().label("n"))
            .where(EvaluatedCase.judged_at >= since, EvaluatedCase.kind_code.is_not(None), place.is_not(None))
            .group_by(EvaluatedCase.kind_code, place)
            .having(func.count() >= min_reports)
            .order_by(func.count().desc())
            .limit(limit)
        )
    ).all()
    found: list[Hotspot] = []
    for kind_code, place_code, _n in groups:
        members = list(
            (
                await session.execute(
                    select(EvaluatedCase)
                    .where(
                        EvaluatedCase.judged_at >= since,
                        EvaluatedCase.kind_code == kind_code,
                        place == place_code,
                    )
                    .order_by(EvaluatedCase.judged_at)
                )
            ).scalars()
        )
        found.append(
            Hotspot(
                kind_code=kind_code,
                place_code=place_code,
                place_name=members[0].place_name,
                reports=len(members),
                first_at=members[0].judged_at,
                last_at=members[-1].judged_at,
                case_ids=[m.case_id for m in members],
            )
        )
    return found

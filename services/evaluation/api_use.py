"""Routes of the "use" step (用): hot spots, repeat complaints, the monthly issue list and guide suggestions."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query

from services.evaluation import hotspots, insights, repeats
from services.evaluation.deps import Session, Settings
from services.evaluation.periods import parse_period
from services.evaluation.schemas_use import GuidePage, HotspotPage, MonthlyIssuePage, RepeatPage
from shared.auth import require
from shared.events import utcnow
from shared.problems import Problem
from shared.timefields import IsoDate, IsoDateTime

# Analysts, staff and admin (shared/auth/roles.py).
router = APIRouter(prefix="/v1", tags=["evaluation: use"], dependencies=[Depends(require("metrics:read"))])
UntilQ = Annotated[IsoDateTime | None, Query(description="end of the window (default: now)")]
LimitQ = Annotated[int, Query(ge=1, le=200)]


def _until(value: datetime | None) -> datetime:
    if value is None:
        return utcnow()
    if value.tzinfo is None:
        raise Problem("until needs a time zone offset, e.g. 2026-11-26T12:00:00+08:00", field="until")
    return value


@router.get("/hotspots", response_model=HotspotPage)
async def get_hotspots(
    session: Session,
    settings: Settings,
    window_days: Annotated[int | None, Query(ge=1, le=90)] = None,
    min_reports: Annotated[int | None, Query(ge=2, le=1000)] = None,
    until: UntilQ = None,
    limit: LimitQ = 50,
) -> HotspotPage:
    """Reports about the same place and problem within the window, across sources and wording, by heat index."""
    end = _until(until)
    window = window_days or settings.hotspot_window_days
    minimum = min_reports or settings.hotspot_min_reports
    radius = settings.hotspot_radius_m
    tz = ZoneInfo(settings.timezone)
    async with session.begin():
        items = await hotspots.hotspots(
            session,
            until=end,
            days=window,
            min_reports=minimum,
            place_level=settings.hotspot_place_level,
            tz=tz,
            limit=limit,
        )
    _, first, last = hotspots.window_days(end, window, tz)
    return HotspotPage(
        window_days=window,
        window_from=datetime.combine(first, time(), tz),
        window_to=datetime.combine(last + timedelta(days=1), time(), tz),
        min_reports=minimum,
        radius_m=radius,
        place_level=settings.hotspot_place_level,
        clustering=hotspots.CLUSTERING.format(place_level=settings.hotspot_place_level, radius=radius),
        formula=hotspots.FORMULA,
        items=items,
    )


@router.get("/repeat-complaints", response_model=RepeatPage)
async def get_repeat_complaints(
    session: Session,
    settings: Settings,
    window_days: Annotated[int | None, Query(ge=1, le=366)] = None,
    min_cases: Annotated[int, Query(ge=2, le=1000)] = 2,
    unit: Annotated[str | None, Query(max_length=64, description="only groups with a case sent to this unit")] = None,
    until: UntilQ = None,
    limit: LimitQ = 50,
) -> RepeatPage:
    """The same kind of matter reported again by the same caller, or from the same address or spot."""
    end = _until(until)
    window = window_days or settings.repeat_window_days
    since = end - timedelta(days=window)
    async with session.begin():
        items = await repeats.repeat_complaints(
            session, since=since, until=end, min_cases=min_cases, unit=unit, limit=limit
        )
    return RepeatPage(
        window_days=window,
        window_from=since,
        window_to=end,
        min_cases=min_cases,
        unit=unit,
        rule=repeats.REPEAT_RULE,
        items=items,
    )


@router.get("/monthly-issues", response_model=MonthlyIssuePage)
async def get_monthly_issues(
    session: Session,
    settings: Settings,
    month: Annotated[str | None, Query(pattern=r"^\d{4}-\d{2}$", description="YYYY-MM; default: this month")] = None,
    limit: Annotated[int, Query(ge=1, le=50)] = 10,
) -> MonthlyIssuePage:
    """The problems that most deserve proactive work this month (每月一题), with the evidence."""
    chosen = parse_period(month or datetime.now(ZoneInfo(settings.timezone)).strftime("%Y-%m"), field="month")
    async with session.begin():
        items = await insights.monthly_issues(session, settings, month=chosen, limit=limit)
    return MonthlyIssuePage(
        month=chosen.name,
        date_from=chosen.start,
        date_to=chosen.end,
        min_cases=settings.monthly_issue_min_cases,
        formula=insights.MONTHLY_FORMULA,
        items=items,
    )


@router.get("/guide-suggestions", response_model=GuidePage)
async def get_guide_suggestions(
    session: Session,
    settings: Settings,
    date_from: Annotated[IsoDate | None, Query(alias="from", description="default: 90 days before to")] = None,
    date_to: Annotated[IsoDate | None, Query(alias="to", description="default: today")] = None,
) -> GuidePage:
    """Kinds often returned or re-routed, and the guide changes they suggest, with the evidence."""
    end = date_to or datetime.now(ZoneInfo(settings.timezone)).date()
    start = date_from or end - timedelta(days=89)
    if start > end:
        raise Problem("from is after to", field="from")
    async with session.begin():
        items = await insights.guide_suggestions(session, settings, date_from=start, date_to=end)
    return GuidePage(
        date_from=start,
        date_to=end,
        min_cases=settings.guide_min_cases,
        return_rate_threshold=settings.guide_return_rate,
        reroute_rate_threshold=settings.guide_reroute_rate,
        rule=insights.GUIDE_RULE.format(
            min_cases=settings.guide_min_cases, reroute=settings.guide_reroute_rate, returned=settings.guide_return_rate
        ),
        items=items,
    )

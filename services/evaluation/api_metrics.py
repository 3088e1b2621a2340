"""Routes of the rates (三率 and the rest), fair rankings and composite unit scores."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel

from services.evaluation import metrics, rankings
from services.evaluation.deps import Session, Settings
from services.evaluation.periods import PERIOD_HELP, Grouping, Period, parse_period
from services.evaluation.schemas_metrics import By, Level, MetricsPage, RankingPage, RankLevel, UnitScorePage
from services.evaluation.settings import EvaluationSettings
from shared.auth import require
from shared.problems import Problem
from shared.timefields import IsoDate

# Analysts, staff and admin (shared/auth/roles.py).
router = APIRouter(
    prefix="/v1", tags=["evaluation: rates and rankings"], dependencies=[Depends(require("metrics:read"))]
)
Metric = Literal[
    "response_rate",
    "resolution_rate",
    "satisfaction_rate",
    "on_time_sign_rate",
    "on_time_completion_rate",
    "return_rate",
    "reopen_rate",
    "extension_rate",
    "overdue_rate",
]
CSV = "text/csv"


LevelQ = Annotated[
    Level, Query(description="department (the responsible unit), street, community, grid, category, kind, city")
]
UnitQ = Annotated[str | None, Query(max_length=64, description="one code at the level")]
KindQ = Annotated[str | None, Query(max_length=32)]
ByQ = Annotated[By | None, Query(description="split each department or street row by kind or category")]
GroupingQ = Annotated[Grouping, Query(description="period of each row")]
FromQ = Annotated[IsoDate | None, Query(alias="from")]
ToQ = Annotated[IsoDate | None, Query(alias="to")]


async def metrics_page(
    session: Session,
    level: LevelQ = "department",
    unit: UnitQ = None,
    kind: KindQ = None,
    category: KindQ = None,
    by: ByQ = None,
    grouping: GroupingQ = "month",
    date_from: FromQ = None,
    date_to: ToQ = None,
) -> dict[str, Any]:
    """A metrics page as plain fields of ``MetricsPage`` (a grid-level page has thousands of rows)."""
    if date_from and date_to and date_from > date_to:
        raise Problem("from is after to", field="from")
    async with session.begin():
        items = await metrics.metrics(
            session,
            level=level,
            unit=unit,
            kind=kind,
            category=category,
            by=by,
            grouping=grouping,
            date_from=date_from,
            date_to=date_to,
        )
    return {
        "level": level,
        "unit": unit,
        "kind": kind,
        "category": category,
        "by": by,
        "grouping": grouping,
        "date_from": date_from.isoformat() if date_from else None,
        "date_to": date_to.isoformat() if date_to else None,
        "definitions": metrics.DEFINITION_FIELDS,
        "notes": metrics.NOTES,
        "items": items,
    }


def as_json(page: BaseModel | dict[str, Any]) -> Response:
    """Serialise once; a metrics page is built from computed counters and skips a second validation pass."""
    if isinstance(page, BaseModel):
        return Response(page.model_dump_json(), media_type="application/json")
    return Response(json.dumps(page, ensure_ascii=False, separators=(",", ":")), media_type="application/json")


def _csv(page: dict[str, Any]) -> Response:
    name = f"metrics-{page['level']}-{page['grouping']}.csv"
    return Response(
        metrics.to_csv(page["items"]),
        media_type=f"{CSV}; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


Page = Annotated[dict[str, Any], Depends(metrics_page)]


@router.get("/metrics", response_model=MetricsPage, responses={200: {"content": {CSV: {}}}})
async def get_metrics(request: Request, page: Page) -> Response:
    """The rates with their numerators and denominators, per unit and period, from the roll-ups (CSV on `Accept:
    text/csv`)."""
    return _csv(page) if CSV in request.headers.get("accept", "") else as_json(page)


@router.get("/metrics.csv", response_class=Response, responses={200: {"content": {CSV: {}}}})
async def get_metrics_csv(page: Page) -> Response:
    """The same rows as `GET /v1/metrics`, as CSV."""
    return _csv(page)


def period_or_this_month(text: str | None, settings: EvaluationSettings) -> Period:
    """The named period, or the current month in the service's time zone."""
    return parse_period(text or datetime.now(ZoneInfo(settings.timezone)).strftime("%Y-%m"))


PeriodQ = Annotated[str | None, Query(max_length=10, description=f"{PERIOD_HELP}; default: this month")]


@router.get("/rankings", response_model=RankingPage)
async def get_rankings(
    session: Session,
    settings: Settings,
    metric: Metric = "satisfaction_rate",
    level: RankLevel = "department",
    period: PeriodQ = None,
    confidence: Annotated[float | None, Query(ge=0.5, le=0.999)] = None,
    min_sample: Annotated[int | None, Query(ge=1, le=100_000)] = None,
) -> Response:
    """Units ranked by the Wilson score bound of a rate, so a unit with 3 cases does not top one with 3,000."""
    chosen = period_or_this_month(period, settings)
    async with session.begin():
        page = await rankings.rankings(
            session,
            metric=metric,
            level=level,
            period=chosen,
            confidence=confidence or settings.ranking_confidence,
            min_sample=min_sample or settings.ranking_min_sample,
        )
    return as_json(page)


@router.get("/unit-scores", response_model=UnitScorePage)
async def get_unit_scores(
    session: Session, settings: Settings, level: RankLevel = "department", period: PeriodQ = None
) -> UnitScorePage:
    """Composite unit scores: the case-based part and the towns' ratings (bottom-up), with formula and weights."""
    chosen = period_or_this_month(period, settings)
    async with session.begin():
        return await rankings.unit_scores(session, settings, level=level, period=chosen)

"""Evaluation routes: call-back feedback, the three rates, hot spots."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession

from services.evaluation import service
from services.evaluation.models import Feedback
from services.evaluation.schemas import (
    EvaluationRead,
    FeedbackCreate,
    FeedbackRead,
    HotspotPage,
    MetricsPage,
)
from services.evaluation.settings import EvaluationSettings
from shared.app import db_session, runtime_of
from shared.problems import Problem

router = APIRouter(prefix="/v1", tags=["evaluation"])
Session = Annotated[AsyncSession, Depends(db_session)]


def _read(row: Feedback) -> FeedbackRead:
    return FeedbackRead(
        case_id=row.case_id,
        round=row.round,
        resolved=row.resolved,
        satisfaction=row.satisfaction,
        comment=row.comment,
        verdict=row.verdict,
        recorded_at=row.recorded_at,
    )


@router.post(
    "/feedback",
    status_code=201,
    response_model=FeedbackRead,
    responses={409: {"description": "not completed, or already answered"}},
)
async def post_feedback(body: FeedbackCreate, request: Request, session: Session) -> FeedbackRead:
    """The call-back (回访) answer for a completed case; dissatisfied or unresolved reopens it."""
    async with session.begin():
        row = await service.record_feedback(session, body)
    runtime_of(request).outbox_written()
    return _read(row)


@router.get("/evaluations/{case_id}", response_model=EvaluationRead)
async def read_evaluation(case_id: str, session: Session) -> EvaluationRead:
    """Evaluation's view of a case: status, round and feedback."""
    async with session.begin():
        case, rows = await service.evaluation_of(session, case_id)
    return EvaluationRead(
        case_id=case.case_id,
        case_number=case.case_number,
        status=case.status,
        primary_unit=case.primary_unit,
        kind_code=case.kind_code,
        round=case.round,
        awaiting_feedback=case.status == "completed",
        feedback=[_read(r) for r in rows],
    )


@router.get("/metrics", response_model=MetricsPage)
async def get_metrics(
    session: Session,
    unit: Annotated[str | None, Query(max_length=64)] = None,
    grouping: Annotated[Literal["day", "month", "all"], Query(description="period of each row")] = "month",
    date_from: Annotated[date | None, Query(alias="from")] = None,
    date_to: Annotated[date | None, Query(alias="to")] = None,
) -> MetricsPage:
    """Response, resolution and satisfaction rates (三率) with their counts, per unit and period."""
    if date_from and date_to and date_from > date_to:
        raise Problem("from is after to", field="from")
    async with session.begin():
        items = await service.metrics(session, unit=unit, grouping=grouping, date_from=date_from, date_to=date_to)
    return MetricsPage(
        grouping=grouping, date_from=date_from, date_to=date_to, definitions=service.DEFINITIONS, items=items
    )


@router.get("/hotspots", response_model=HotspotPage)
async def get_hotspots(
    request: Request,
    session: Session,
    window_days: Annotated[int | None, Query(ge=1, le=90)] = None,
    min_reports: Annotated[int | None, Query(ge=2, le=1000)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> HotspotPage:
    """One kind of problem reported again and again in one place (first, simple version)."""
    settings = runtime_of(request).settings
    assert isinstance(settings, EvaluationSettings)
    window = window_days or settings.hotspot_window_days
    minimum = min_reports or settings.hotspot_min_reports
    async with session.begin():
        items = await service.hotspots(session, window_days=window, min_reports=minimum, limit=limit)
    return HotspotPage(window_days=window, min_reports=minimum, items=items)

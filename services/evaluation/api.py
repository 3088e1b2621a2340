"""Evaluation routes: call-backs (回访) and one case's evaluation."""

from __future__ import annotations

from fastapi import APIRouter, Request

from services.evaluation import callbacks, service
from services.evaluation.deps import Session, Settings
from services.evaluation.models import Feedback
from services.evaluation.schemas import (
    AttemptCreate,
    AttemptRead,
    CaseScore,
    EvaluationRead,
    FeedbackCreate,
    FeedbackRead,
    assignment_read,
)
from shared.app import runtime_of

router = APIRouter(prefix="/v1", tags=["evaluation: call-backs"])


def feedback_read(row: Feedback) -> FeedbackRead:
    """A stored call-back round for the API."""
    return FeedbackRead.model_validate(row, from_attributes=True)


PROBLEMS: dict[int | str, dict[str, str]] = {
    403: {"description": "this respondent may not answer a case from this source"},
    404: {"description": "evaluation has not seen the case"},
    409: {"description": "not completed, or this round was already answered"},
}


@router.post("/feedback", status_code=201, response_model=FeedbackRead, responses=PROBLEMS)
async def post_feedback(body: FeedbackCreate, request: Request, session: Session, settings: Settings) -> FeedbackRead:
    """The call-back answer (回访) for a completed case.

    Resolved and not dissatisfied closes the case. Otherwise the case is reopened to the same unit (重办), unless
    `fault` is `not_unit`: then it closes and the answer does not count against the unit. Hotline cases are answered
    by the citizen, grid reports by the grid worker, town reports by the town.
    """
    async with session.begin():
        row = await callbacks.record_feedback(session, settings, body)
    runtime_of(request).outbox_written()
    return feedback_read(row)


@router.post("/callback-attempts", status_code=201, response_model=AttemptRead, responses=PROBLEMS)
async def post_attempt(body: AttemptCreate, request: Request, session: Session, settings: Settings) -> AttemptRead:
    """A call-back that reached no one; after the allowed attempts the case closes as unreachable (not counted)."""
    async with session.begin():
        case, row = await callbacks.record_attempt(session, settings, body)
    if row is not None:
        runtime_of(request).outbox_written()
    return AttemptRead(
        case_id=case.case_id,
        round=case.round,
        attempts=case.callback_attempts,
        attempts_allowed=settings.callback_max_attempts,
        verdict="closed" if row is not None else None,
        feedback=feedback_read(row) if row is not None else None,
    )


@router.get("/evaluations/{case_id}", response_model=EvaluationRead)
async def read_evaluation(case_id: str, session: Session, settings: Settings) -> EvaluationRead:
    """Evaluation's view of a case: its assignments, call-back rounds and score (按件考核) with the breakdown."""
    async with session.begin():
        case, rows = await service.evaluation_of(session, case_id)
        if case.score_breakdown is not None:
            breakdown = case.score_breakdown
        else:
            answer = await callbacks.last_counted_answer(session, case.case_id)
            breakdown = callbacks.case_score(settings, case, answer, final=False)
    answered = any(r.round == case.round for r in rows)
    return EvaluationRead(
        case_id=case.case_id,
        case_number=case.case_number,
        source=case.source,
        status=case.status,
        primary_unit=case.primary_unit,
        kind_code=case.kind_code,
        category_code=case.category_code,
        territory=service.territory_of(case),
        round=case.round,
        awaiting_feedback=case.status == "completed" and not answered,
        callback_attempts=case.callback_attempts,
        attempts_allowed=settings.callback_max_attempts,
        allowed_respondents=callbacks.allowed_respondents(settings, case.source),
        outcome=case.outcome,
        score=CaseScore.model_validate(breakdown),
        assignments=[assignment_read(a) for a in case.assignments],
        feedback=[feedback_read(r) for r in rows],
    )

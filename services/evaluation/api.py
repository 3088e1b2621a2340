"""Evaluation routes: call-backs (回访) and one case's evaluation."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from services.evaluation import callbacks, repeats, service
from services.evaluation.deps import Session, Settings
from services.evaluation.models import EvaluatedCase, Feedback
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
from shared.auth import Principal, require
from shared.auth.guard import forbid
from shared.routing import JSONRoute

router = APIRouter(prefix="/v1", tags=["evaluation: call-backs"], route_class=JSONRoute)


def feedback_read(row: Feedback) -> FeedbackRead:
    """A stored call-back round for the API."""
    return FeedbackRead.model_validate(row, from_attributes=True)


PROBLEMS: dict[int | str, dict[str, str]] = {
    403: {"description": "this respondent may not answer a case from this source"},
    404: {"description": "evaluation has not seen the case"},
    409: {"description": "not completed, or this round was already answered"},
}


Respondent = Annotated[Principal, Depends(require("feedback:create"))]

# The respondent each answering role speaks as; admin may record any.
_RESPONDENT_OF_ROLE = {"hotline": "citizen", "grid": "grid_worker", "town": "town"}


def respondent_refusal(principal: Principal, case: EvaluatedCase, respondent: str) -> str | None:
    """Why this caller may not answer for the case as this respondent, or None when it may.

    The hotline calls citizens back; a grid worker confirms reports from its own grids, a town those of its own
    territory (its street codes).
    """
    expected = _RESPONDENT_OF_ROLE.get(principal.role)
    if expected is None:
        return None
    if respondent != expected:
        return f"a {principal.role} credential answers as {expected}, not as {respondent}"
    if principal.role == "grid" and case.grid_code not in principal.grids:
        return f"case {case.case_number} is not from one of this credential's grids"
    if principal.role == "town" and case.street_code not in principal.streets:
        return f"case {case.case_number} is not in this town's territory"
    return None


def _checker(request: Request, principal: Principal) -> callbacks.RespondentCheck:
    async def check(case: EvaluatedCase, respondent: str) -> None:
        reason = respondent_refusal(principal, case, respondent)
        if reason is not None:
            await forbid(request, principal, action="feedback:create", detail=reason, field="case_id")

    return check


@router.post("/feedback", status_code=201, response_model=FeedbackRead, responses=PROBLEMS)
async def post_feedback(
    body: FeedbackCreate, request: Request, session: Session, settings: Settings, caller: Respondent
) -> FeedbackRead:
    """The call-back answer (回访) for a completed case.

    Resolved and not dissatisfied closes the case. Otherwise the case is reopened to the same unit (重办), unless
    `fault` is `not_unit`: then it closes and the answer does not count against the unit. Hotline cases are answered
    by the citizen, grid reports by the grid worker, town reports by the town.
    """
    async with session.begin():
        row = await callbacks.record_feedback(session, settings, body, check=_checker(request, caller))
    runtime_of(request).outbox_written()
    return feedback_read(row)


@router.post("/callback-attempts", status_code=201, response_model=AttemptRead, responses=PROBLEMS)
async def post_attempt(
    body: AttemptCreate, request: Request, session: Session, settings: Settings, caller: Respondent
) -> AttemptRead:
    """A call-back that reached no one; after the allowed attempts the case closes as unreachable (not counted)."""
    async with session.begin():
        case, row = await callbacks.record_attempt(session, settings, body, check=_checker(request, caller))
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


@router.get("/evaluations/{case_id}", response_model=EvaluationRead, dependencies=[Depends(require("evaluation:read"))])
async def read_evaluation(case_id: str, session: Session, settings: Settings) -> EvaluationRead:
    """Evaluation's view of a case: its assignments, call-back rounds and score (按件考核) with the breakdown."""
    async with session.begin():
        case, rows = await service.evaluation_of(session, case_id)
        if case.score_breakdown is not None:
            breakdown = case.score_breakdown
        else:
            answer = await callbacks.last_counted_answer(session, case.case_id)
            breakdown = callbacks.case_score(settings, case, answer, final=False)
        marks = await repeats.repeat_marks(session, case, window_days=settings.repeat_window_days)
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
        repeats=marks,
    )

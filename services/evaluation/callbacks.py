"""Call-backs (回访): the answer or the unreachable respondent, the verdict it leads to, and the case's score."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.evaluation import service
from services.evaluation.models import CallbackAttempt, EvaluatedCase, Feedback, messaging
from services.evaluation.schemas import AttemptCreate, FeedbackCreate
from services.evaluation.scoring import Answer, score_case
from services.evaluation.settings import EvaluationSettings
from shared import topics
from shared.events import CloudEvent, utcnow
from shared.outbox import add_event
from shared.problems import Conflict, Forbidden, NotFound

SOURCE = "/jiesu/evaluation"


def allowed_respondents(settings: EvaluationSettings, source: str) -> list[str]:
    """Who may answer the call-back of a case from this source."""
    return settings.respondents.get(source) or ["citizen"]


RespondentCheck = Callable[[EvaluatedCase, str], Awaitable[None]]
"""Raises when the caller may not answer for this case as this respondent (the edge decides who the caller is)."""


async def _open_round(
    session: AsyncSession,
    settings: EvaluationSettings,
    case_id: str,
    respondent: str | None,
    check: RespondentCheck | None = None,
) -> tuple[EvaluatedCase, str]:
    """The case, locked and waiting for its call-back, and who answers (checked against the case's source)."""
    case = await service.lock(session, case_id)
    if case is None:
        raise NotFound(f"evaluation has no case {case_id} (yet)", field="case_id")
    allowed = allowed_respondents(settings, case.source)
    who = respondent or allowed[0]
    if who not in allowed:
        raise Forbidden(
            f"a {case.source} case ({case.case_number}) is confirmed by {' or '.join(allowed)}, not by {who}",
            field="respondent",
            allowed=allowed,
        )
    if check is not None:
        await check(case, who)
    already = (
        await session.execute(select(Feedback).where(Feedback.case_id == case.case_id, Feedback.round == case.round))
    ).scalar_one_or_none()
    if already is not None:
        raise Conflict(
            f"the call-back of round {case.round} of case {case.case_number} was recorded at "
            f"{already.recorded_at.isoformat()}",
            field="case_id",
            current_status=case.status,
        )
    if case.status != "completed" or not case.assignments:
        raise Conflict(
            f"case {case.case_number} is {case.status}; the call-back is made once it is completed",
            field="case_id",
            current_status=case.status,
        )
    return case, who


def returned_without_cause(case: EvaluatedCase) -> int:
    """Returns by the case's current unit that the centre sent back to it (退单无据)."""
    unit = case.primary_unit
    return int(sum(a["counters"].get("returned_without_cause", 0) for a in case.assignments if a["unit"] == unit))


def case_score(
    settings: EvaluationSettings, case: EvaluatedCase, answer: Answer | None, *, final: bool
) -> dict[str, Any]:
    """The score of a case as it stands, judged by its current assignment and the given answer."""
    assignment = service.current(case)
    return score_case(
        settings.score_rules,
        counters=assignment["counters"] if assignment else {},
        returned_without_cause=returned_without_cause(case),
        answer=answer,
        final=final,
    )


async def _close(
    session: AsyncSession,
    settings: EvaluationSettings,
    case: EvaluatedCase,
    answer: Answer | None,
    *,
    outcome: str,
    at: datetime,
) -> None:
    """Evaluation closes the case: its final score joins the unit's roll-ups."""
    breakdown = case_score(settings, case, answer, final=True)
    case.outcome = outcome
    case.closed_at = at
    case.score = breakdown["score"]
    case.score_breakdown = breakdown
    increments: dict[str, float] = {"closed": 1}
    if breakdown["score"] is not None:
        increments |= {"scored": 1, "score_sum": breakdown["score"]}
    await service.add(session, case, len(case.assignments) - 1, **increments)


async def _announce(session: AsyncSession, case: EvaluatedCase, row: Feedback, at: datetime) -> None:
    """The verdict dispatch applies: close the case, or reopen it to the same unit (重办)."""
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
            time=at,
            data={
                "case_id": case.case_id,
                "case_number": case.case_number,
                "round": row.round,
                "verdict": row.verdict,
                "unit_code": case.primary_unit,
                "outcome": case.outcome,
                "score": case.score,
                "feedback": {
                    "respondent": row.respondent,
                    "outcome": row.outcome,
                    "resolved": row.resolved,
                    "satisfaction": row.satisfaction,
                    "fault": row.fault,
                    "fault_reason": row.fault_reason,
                    "counted": row.counted,
                    "attempts": row.attempts,
                    "comment": row.comment,
                },
            },
        ),
    )


async def record_feedback(
    session: AsyncSession, settings: EvaluationSettings, body: FeedbackCreate, *, check: RespondentCheck | None = None
) -> Feedback:
    """Record the answer for the current round and emit the verdict.

    Resolved and not dissatisfied closes the case. Anything else reopens it to the same unit, unless it is not the
    unit's fault: then it closes, and the answer is kept out of the unit's resolution and satisfaction rates.
    """
    case, respondent = await _open_round(session, settings, body.case_id, body.respondent, check)
    now = utcnow()
    content = body.resolved and body.satisfaction != "dissatisfied"
    counted = content or body.fault == "unit"
    verdict = "closed" if content or body.fault == "not_unit" else "reopened"
    increments: dict[str, float] = {"callbacks": 1}
    if counted:
        increments |= {"callbacks_counted": 1, "resolved": int(body.resolved), body.satisfaction: 1}
    else:
        increments["not_unit_fault"] = 1
    await service.add(session, case, len(case.assignments) - 1, **increments)
    row = Feedback(
        case_id=case.case_id,
        round=case.round,
        unit_code=case.primary_unit,
        respondent=respondent,
        outcome="answered",
        resolved=body.resolved,
        satisfaction=body.satisfaction,
        fault=None if content else body.fault,
        fault_reason=None if content else body.fault_reason,
        counted=counted,
        attempts=case.callback_attempts,
        comment=body.comment,
        verdict=verdict,
        recorded_at=now,
    )
    session.add(row)
    if verdict == "closed":
        answer = Answer(resolved=body.resolved, satisfaction=body.satisfaction) if counted else None
        await _close(session, settings, case, answer, outcome="closed" if counted else "closed_not_unit_fault", at=now)
    await _announce(session, case, row, now)
    return row


async def record_attempt(
    session: AsyncSession, settings: EvaluationSettings, body: AttemptCreate, *, check: RespondentCheck | None = None
) -> tuple[EvaluatedCase, Feedback | None]:
    """A failed call-back; the last allowed attempt closes the case as unreachable, not counted in satisfaction."""
    case, respondent = await _open_round(session, settings, body.case_id, body.respondent, check)
    now = utcnow()
    session.add(
        CallbackAttempt(case_id=case.case_id, round=case.round, respondent=respondent, note=body.note, attempted_at=now)
    )
    case.callback_attempts += 1
    if case.callback_attempts < settings.callback_max_attempts:
        return case, None
    row = Feedback(
        case_id=case.case_id,
        round=case.round,
        unit_code=case.primary_unit,
        respondent=respondent,
        outcome="unreachable",
        counted=False,
        attempts=case.callback_attempts,
        comment=body.note,
        verdict="closed",
        recorded_at=now,
    )
    session.add(row)
    await service.add(session, case, len(case.assignments) - 1, unreachable=1)
    await _close(session, settings, case, None, outcome="closed_unreachable", at=now)
    await _announce(session, case, row, now)
    return case, row


async def last_counted_answer(session: AsyncSession, case_id: str) -> Answer | None:
    """The latest answer that counts against the unit (for a provisional score)."""
    row = (
        await session.execute(
            select(Feedback)
            .where(Feedback.case_id == case_id, Feedback.counted.is_(True), Feedback.outcome == "answered")
            .order_by(Feedback.round.desc())
            .limit(1)
        )
    ).scalar_one_or_none()
    if row is None or row.resolved is None or row.satisfaction is None:
        return None
    return Answer(resolved=row.resolved, satisfaction=row.satisfaction)

"""The unit's side of a case (办): sign, progress, return, extensions, co-handling, whistle-and-report, disputes."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.dispatch import states, timers, trail
from services.dispatch.context import DispatchContext
from services.dispatch.lifecycle import emit, move
from services.dispatch.models import Case, CaseTask, Dispute, Extension
from services.dispatch.service import dispatch_case, lock_case
from services.dispatch.workdays import add_working_days
from shared import topics
from shared.events import utcnow
from shared.problems import Conflict, Forbidden, Problem

DISPUTE_LEVELS = ("street", "district", "city")  # 三级会商
EVENT_OF = {
    "sign": topics.CASE_SIGNED,
    "progress": topics.CASE_PROGRESSED,
    "return": topics.CASE_RETURNED,
    "complete": topics.CASE_COMPLETED,
}


def _check_unit(case: Case, unit_code: str) -> None:
    if case.primary_unit != unit_code:
        raise Forbidden(
            f"case {case.case_number} is assigned to {case.primary_unit}, not to {unit_code}", field="unit_code"
        )


async def tasks_of(session: AsyncSession, case_id: str) -> list[CaseTask]:
    """A case's co-handling and whistle tasks."""
    rows = await session.execute(select(CaseTask).where(CaseTask.case_id == case_id).order_by(CaseTask.id))
    return list(rows.scalars())


def task_view(task: CaseTask) -> dict[str, Any]:
    """A task as events and the API show it."""
    return {
        "unit_code": task.unit_code,
        "role": task.role,
        "status": task.status,
        "due_at": task.due_at.isoformat() if task.due_at else None,
        "checkin_deadline": task.checkin_deadline.isoformat() if task.checkin_deadline else None,
        "checked_in_at": task.checked_in_at.isoformat() if task.checked_in_at else None,
        "report": task.report,
        "reported_at": task.reported_at.isoformat() if task.reported_at else None,
        "rating": task.rating,
    }


async def unit_action(
    session: AsyncSession, ctx: DispatchContext, case_id: str, *, action: str, unit_code: str, detail: dict[str, Any]
) -> Case:
    """The primary unit signs for (签收), progresses, returns (退单) or completes (办结) its case."""
    case = await lock_case(session, case_id)
    states.next_status(action, case.status)  # the state speaks first: signing a signed case is 409 for anyone
    _check_unit(case, unit_code)
    now = utcnow()
    await move(session, case, action, actor=f"unit:{unit_code}", at=now, detail=detail)
    extra: dict[str, Any] = {"unit_code": unit_code, **detail}
    if action == "sign":
        await timers.cancel(session, case.id, timers.SIGN_KINDS)
        extra |= {
            "on_time": case.sign_deadline is None or now <= case.sign_deadline,
            "sign_deadline": case.sign_deadline.isoformat() if case.sign_deadline else None,
        }
    elif action == "complete":
        await timers.cancel(session, case.id, timers.COMPLETE_KINDS)
        cooperation = [task_view(t) for t in await tasks_of(session, case.id)]
        case.result = detail | {"cooperation": cooperation}
        extra |= {
            "on_time": case.complete_deadline is None or now <= case.complete_deadline,
            "cooperation": cooperation,
        }
    elif action == "return":
        await timers.cancel(session, case.id, timers.SIGN_KINDS + timers.COMPLETE_KINDS)
        case.returns = [*case.returns, {"unit_code": unit_code, "reason": detail.get("reason"), "at": now.isoformat()}]
    await emit(session, case, EVENT_OF[action], now, **extra)
    if action == "return" and len(case.returns) >= 2:
        await open_dispute(session, case)
    return case


async def open_dispute(session: AsyncSession, case: Case) -> Dispute:
    """Returned by two units, or twice: a responsibility dispute, first at street level."""
    now = utcnow()
    units = sorted({r["unit_code"] for r in case.returns})
    dispute = Dispute(
        case_id=case.id,
        level="street",
        status="open",
        opened_at=now,
        history=[{"level": "street", "at": now.isoformat(), "event": "opened", "returns": case.returns}],
    )
    session.add(dispute)
    await move(session, case, "dispute", actor="system:dispatch", at=now, detail={"level": "street", "units": units})
    await emit(session, case, topics.CASE_DISPUTED, now, level="street", units=units, returns=case.returns)
    return dispute


async def _open_dispute(session: AsyncSession, case: Case) -> Dispute:
    dispute = (
        await session.execute(select(Dispute).where(Dispute.case_id == case.id, Dispute.status == "open"))
    ).scalar_one_or_none()
    if dispute is None:
        raise Conflict(f"case {case.case_number} has no open dispute", current_status=case.status)
    return dispute


async def escalate_dispute(session: AsyncSession, case_id: str, *, actor: str, reason: str) -> Case:
    """The level could not settle it: up to the next (street → district → city)."""
    case = await lock_case(session, case_id)
    dispute = await _open_dispute(session, case)
    position = DISPUTE_LEVELS.index(dispute.level)
    if position == len(DISPUTE_LEVELS) - 1:
        raise Conflict("the city level is the last: it must decide", field="level", current_status=case.status)
    now = utcnow()
    level = DISPUTE_LEVELS[position + 1]
    entry = {"level": level, "at": now.isoformat(), "event": "escalated", "by": actor, "reason": reason}
    dispute.history = [*dispute.history, entry]
    dispute.level = level

    await trail.append(
        session,
        case=case,
        at=now,
        actor=actor,
        action="escalate_dispute",
        from_status=case.status,
        to_status=case.status,
        detail=entry,
    )
    await emit(session, case, topics.CASE_DISPUTE_ESCALATED, now, level=level, reason=reason)
    return case


async def decide_dispute(
    session: AsyncSession,
    ctx: DispatchContext,
    case_id: str,
    *,
    level: str,
    decided_by: str,
    primary_unit: str,
    cooperating_units: list[str] | None,
    reason: str,
) -> Case:
    """The level holding the dispute decides who is responsible; the case is re-dispatched accordingly."""
    case = await lock_case(session, case_id)
    dispute = await _open_dispute(session, case)
    if level != dispute.level:
        raise Conflict(
            f"the dispute is at {dispute.level} level, not {level}", field="level", current_status=case.status
        )
    known = ctx.guide.unit_by_code
    for unit in [primary_unit, *(cooperating_units or [])]:
        if unit not in known:
            raise Problem(f"unknown unit {unit}", field="primary_unit" if unit == primary_unit else "cooperating_units")
    now = utcnow()
    decision = {"primary_unit": primary_unit, "cooperating_units": cooperating_units, "reason": reason}
    dispute.status = "settled"
    dispute.settled_at = now
    dispute.decided_by = decided_by
    dispute.decision = decision | {"level": level}
    dispute.history = [*dispute.history, {"level": level, "at": now.isoformat(), "event": "settled", "by": decided_by}]
    case.primary_unit = primary_unit
    if cooperating_units is not None:
        case.cooperating_units = [u for u in cooperating_units if u != primary_unit]
    case.returns = []
    await dispatch_case(
        session,
        ctx,
        case,
        actor=decided_by,
        at=now,
        reasons=[f"dispute settled at {level} level by {decided_by}: {reason}"],
        note="restarted when the dispute was settled; time in dispute is not counted against the unit",
    )
    return case


async def request_extension(
    session: AsyncSession, case_id: str, *, unit_code: str, working_days: int, reason: str
) -> Case:
    """延期: asked by the primary unit before the completion deadline."""
    case = await lock_case(session, case_id)
    states.next_status("request_extension", case.status)
    _check_unit(case, unit_code)
    now = utcnow()
    if case.complete_deadline is not None and now >= case.complete_deadline:
        raise Conflict(
            f"the completion deadline passed at {case.complete_deadline.isoformat()}; "
            "an extension must be asked before it",
            field="working_days",
            current_status=case.status,
        )
    session.add(
        Extension(
            case_id=case.id,
            unit_code=unit_code,
            working_days=working_days,
            reason=reason,
            status="requested",
            requested_at=now,
        )
    )
    detail = {"unit_code": unit_code, "working_days": working_days, "reason": reason}
    await move(session, case, "request_extension", actor=f"unit:{unit_code}", at=now, detail=detail)
    await emit(session, case, topics.CASE_EXTENSION_REQUESTED, now, **detail)
    return case


async def decide_extension(
    session: AsyncSession, ctx: DispatchContext, case_id: str, *, granted: bool, actor: str, reason: str | None
) -> Case:
    """The dispatch centre grants or refuses a requested extension."""
    case = await lock_case(session, case_id)
    states.next_status("grant_extension", case.status)
    extension = (
        await session.execute(select(Extension).where(Extension.case_id == case.id, Extension.status == "requested"))
    ).scalar_one()
    now = utcnow()
    extension.status = "granted" if granted else "refused"
    extension.decided_at = now
    extension.decided_by = actor
    extension.decision_reason = reason
    detail: dict[str, Any] = {"granted": granted, "working_days": extension.working_days, "reason": reason}
    if granted and case.complete_deadline is not None:
        moved = add_working_days(case.complete_deadline, extension.working_days, tz=ctx.tz)
        detail["previous_deadline"] = case.complete_deadline.isoformat()
        case.complete_deadline = moved.due
        case.deadline_basis = case.deadline_basis | {
            "complete": f"{case.deadline_basis.get('complete', '')}; extended by {actor}: {moved.basis}"
        }
        detail["complete_deadline"] = moved.due.isoformat()
        await timers.schedule_completion_timers(session, ctx, case, now)
    await move(session, case, "grant_extension" if granted else "refuse_extension", actor=actor, at=now, detail=detail)
    await emit(session, case, topics.CASE_EXTENSION_DECIDED, now, **detail)
    return case


async def _task(session: AsyncSession, case: Case, unit_code: str) -> CaseTask:
    task = (
        await session.execute(select(CaseTask).where(CaseTask.case_id == case.id, CaseTask.unit_code == unit_code))
    ).scalar_one_or_none()
    if task is None:
        raise Forbidden(f"{unit_code} has no task on case {case.case_number}", field="unit_code")
    return task


OPEN_FOR_TASKS = frozenset({"dispatched", "signed", "in_progress", "extension_requested", "reopened"})


async def check_in(session: AsyncSession, case_id: str, *, unit_code: str, note: str | None) -> CaseTask:
    """报到: a department a town whistled for reports in on site."""
    case = await lock_case(session, case_id)
    task = await _task(session, case, unit_code)
    if task.role != "whistle":
        raise Conflict(
            f"{unit_code} was not whistled for on this case; only called departments check in", field="unit_code"
        )
    if task.checked_in_at is not None:
        raise Conflict(f"{unit_code} checked in at {task.checked_in_at.isoformat()}", current_status=task.status)
    now = utcnow()
    task.checked_in_at = now
    task.status = "checked_in"
    on_time = task.checkin_deadline is None or now <= task.checkin_deadline
    detail = {"unit_code": unit_code, "note": note, "on_time": on_time}

    await trail.append(
        session,
        case=case,
        at=now,
        actor=f"unit:{unit_code}",
        action="check_in",
        from_status=case.status,
        to_status=case.status,
        detail=detail,
    )
    await emit(session, case, topics.TASK_CHECKED_IN, now, **detail)
    return task


async def report_task(session: AsyncSession, case_id: str, *, unit_code: str, report: str) -> CaseTask:
    """A cooperating (协办) or whistled unit records what it did."""
    case = await lock_case(session, case_id)
    if case.status not in OPEN_FOR_TASKS:
        raise Conflict(
            f"case {case.case_number} is {case.status}; tasks are reported while it is open", current_status=case.status
        )
    task = await _task(session, case, unit_code)
    if task.role == "whistle" and task.checked_in_at is None:
        raise Conflict(
            f"{unit_code} must check in (报到) before reporting what it did on site", current_status=task.status
        )
    now = utcnow()
    task.report = report
    task.reported_at = now
    task.status = "reported"
    detail = {"unit_code": unit_code, "role": task.role, "report": report}

    await trail.append(
        session,
        case=case,
        at=now,
        actor=f"unit:{unit_code}",
        action="report_task",
        from_status=case.status,
        to_status=case.status,
        detail=detail,
    )
    await emit(session, case, topics.TASK_REPORTED, now, **detail)
    return task


async def rate_whistled(
    session: AsyncSession, case_id: str, *, unit_code: str, score: int, comment: str | None, rated_by: str
) -> CaseTask:
    """The town rates a department it called (the bottom-up share of the department's score)."""
    case = await lock_case(session, case_id)
    task = await _task(session, case, unit_code)
    if task.role != "whistle":
        raise Conflict(f"{unit_code} was not whistled for on this case", field="unit_code")
    if task.checked_in_at is None:
        raise Conflict(f"{unit_code} never checked in; rate it once it came", current_status=task.status)
    if task.rating is not None:
        raise Conflict(f"{unit_code} was already rated on this case", current_status=task.status)
    now = utcnow()
    task.rating = score
    task.rating_comment = comment
    task.rated_at = now
    town = (case.territory or {}).get("codes", {}).get("street")
    detail = {"unit_code": unit_code, "score": score, "comment": comment, "rated_by": rated_by, "town": town}

    await trail.append(
        session,
        case=case,
        at=now,
        actor=rated_by,
        action="rate_whistled",
        from_status=case.status,
        to_status=case.status,
        detail=detail,
    )
    await emit(session, case, topics.WHISTLE_RATED, now, **detail)
    return task


async def extensions_of(session: AsyncSession, case_id: str) -> list[Extension]:
    rows = await session.execute(select(Extension).where(Extension.case_id == case_id).order_by(Extension.id))
    return list(rows.scalars())


async def disputes_of(session: AsyncSession, case_id: str) -> list[Dispute]:
    rows = await session.execute(select(Dispute).where(Dispute.case_id == case_id).order_by(Dispute.id))
    return list(rows.scalars())

"""Judging, routing and handling cases (判、办); service functions never commit."""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.dispatch import duplicates, staging, timers, trail
from services.dispatch.context import DispatchContext
from services.dispatch.duplicates import SYSTEM
from services.dispatch.judge import Judgement
from services.dispatch.lifecycle import assign, emit, mask_phone, move
from services.dispatch.models import Case, CaseTask, LabelledExample
from services.dispatch.workdays import add_hours, add_working_days, add_working_hours
from shared import topics
from shared.db import flush_buffer, write_buffer
from shared.events import utcnow
from shared.guide import Kind
from shared.jurisdiction import Placement
from shared.problems import Conflict, NotFound, Problem

URGENCY_ORDER = ("normal", "urgent", "emergency")


def _urgency(kind: Kind, requested: str | None) -> str:
    levels = [kind.urgency] + ([requested] if requested in URGENCY_ORDER else [])
    return max(levels, key=URGENCY_ORDER.index)


def _route(ctx: DispatchContext, case: Case, kind: Kind, placement: Placement | None) -> list[str]:
    """Set primary and cooperating units and deadlines; return reasons the case cannot be routed."""
    primary: str | None = kind.primary.unit
    if primary is None:
        assert kind.primary.territory is not None
        primary = ctx.jurisdiction.unit_for(placement, kind.primary.territory) if placement else None
        if primary is None:
            return [
                f"kind {kind.code} is handled by the territory ({kind.primary.territory}), but the report is not placed"
            ]
    known = ctx.guide.unit_by_code
    cooperating = [u for u in [*kind.cooperating, *case.requested_departments] if u in known and u != primary]
    case.primary_unit = primary
    case.cooperating_units = list(dict.fromkeys(cooperating))
    return []


def set_deadlines(ctx: DispatchContext, case: Case, start: datetime, *, note: str = "") -> None:
    """Deadlines to sign and to complete from the guide's time limits for the kind and urgency."""
    kind = ctx.guide.kind_by_code[case.kind_code or ""]
    limits = kind.time_limits.get(case.urgency) or kind.time_limits[kind.urgency]  # type: ignore[call-overload]
    sign = (
        add_hours(start, limits.sign_hours, tz=ctx.tz)
        if limits.sign_hours is not None
        else add_working_hours(start, limits.sign_working_hours or 0, tz=ctx.tz)
    )
    if limits.complete_working_days is not None:
        complete = add_working_days(start, limits.complete_working_days, tz=ctx.tz)
    elif limits.complete_working_hours is not None:
        complete = add_working_hours(start, limits.complete_working_hours, tz=ctx.tz)
    else:
        complete = add_hours(start, limits.complete_hours or 0, tz=ctx.tz)
    case.sign_deadline = sign.due
    case.complete_deadline = complete.due
    suffix = f"; {note}" if note else ""
    case.deadline_basis = {
        "sign": f"{kind.code} {case.urgency}: {sign.basis}{suffix}",
        "complete": f"{kind.code} {case.urgency}: {complete.basis}{suffix}",
    }


def _apply_kind(ctx: DispatchContext, case: Case, kind: Kind) -> None:
    case.kind_code = kind.code
    case.category_code = kind.category
    case.domain_code = ctx.guide.domain_of(kind)


def reporter_key(phone: str | None, *, secret: str) -> str | None:
    """A keyed pseudonym of the caller's phone (HMAC): the same caller is recognised, the number is not kept,
    and without the key nobody can find a number by trying them all."""
    digits = "".join(ch for ch in phone or "" if ch.isdigit())
    return hmac.new(secret.encode(), digits.encode(), hashlib.sha256).hexdigest() if digits else None


_KNOWN = "dispatch.known_cases"
_JUDGED = "dispatch.judgements"  # report id -> judgement, made by ``prepare_reports``


async def prefetch_cases(session: AsyncSession, ids: list[str]) -> None:
    """Find in one query which of a chunk's reports already have a case, for ``judge_report``.

    At the chunk's start, nothing waits to be flushed: the statement, built once, runs on the session's connection.
    """
    found: set[str] = set()
    if ids:
        found = set((await (await session.connection()).execute(_KNOWN_CASES, {"ids": ids})).scalars())
    session.info[_KNOWN] = (set(ids), found)


_KNOWN_CASES = select(Case.id).where(Case.id.in_(bindparam("ids", expanding=True)))


async def prepare_reports(session: AsyncSession, ctx: DispatchContext, reports: list[dict[str, Any]]) -> None:
    """Before a chunk's reports are judged: which have a case, each one's judgement, and duplicate candidates.

    Two queries for the whole chunk; judging is pure CPU, done here once so the duplicate search can be loaded
    for every kind the chunk's reports read as.
    """
    await prefetch_cases(session, [str(report.get("id")) for report in reports])
    existing = session.info[_KNOWN][1]
    judgements: dict[str, Judgement] = {}
    wanted: list[duplicates.Probe] = []
    for report in reports:
        if report["id"] in existing or report["id"] in judgements:
            continue
        judgement = _judge(ctx, report)
        judgements[report["id"]] = judgement
        if judgement.kind is not None and judgement.decision not in ("refuse", "transfer"):
            location = report.get("location") or {}
            wanted.append(
                duplicates.Probe(
                    case_id=report["id"],
                    kind=judgement.kind.code,
                    received_at=datetime.fromisoformat(report["received_at"]),
                    caller=_caller_key(ctx, report.get("reporter") or {}),
                    address=duplicates.address_key(report.get("address")),
                    lat=location.get("lat"),
                    lon=location.get("lon"),
                )
            )
    session.info[_JUDGED] = judgements
    await duplicates.load_candidates(session, ctx, wanted)


def _caller_key(ctx: DispatchContext, reporter: dict[str, Any]) -> str | None:
    # Intake sends the caller key; raw phones only in events from before it did.
    return reporter.get("caller_key") or reporter_key(reporter.get("phone"), secret=ctx.settings.caller_key_secret)


def _judge(ctx: DispatchContext, report: dict[str, Any]) -> Judgement:
    return ctx.judge.judge(
        text=report["content"],
        subject=report.get("subject") or "",
        kind_code=report.get("kind_code"),
        source=report["source"],
    )


async def _case_exists(session: AsyncSession, case_id: str) -> bool:
    known: tuple[set[str], set[str]] | None = session.info.get(_KNOWN)
    if known is not None and case_id in known[0]:
        return case_id in known[1]
    return await session.get(Case, case_id) is not None


async def judge_report(session: AsyncSession, ctx: DispatchContext, report: dict[str, Any]) -> Case | None:
    """Open a case for a received report, judge it and dispatch, triage or transfer it."""
    if await _case_exists(session, report["id"]):
        return None
    now = utcnow()
    location = report.get("location") or {}
    reporter = report.get("reporter") or {}
    case = Case(
        id=report["id"],
        case_number=report["case_number"],
        source=report["source"],
        content=report["content"],
        subject=report.get("subject"),
        address=duplicates.address_key(report.get("address")),
        lat=location.get("lat"),
        lon=location.get("lon"),
        cell=duplicates.cell_of(location.get("lat"), location.get("lon")),
        grid_code=report.get("grid_code"),
        # Intake sends the masked phone; raw phones only in events from before it did.
        reporter_phone_masked=reporter.get("phone_masked") or mask_phone(reporter.get("phone")),
        reporter_key=_caller_key(ctx, reporter),
        trail_head=trail.GENESIS,
        merged_cases=[],
        requested_departments=list(report.get("requested_departments") or []),
        urgency=report.get("urgency") or "normal",
        decision="pending",
        status="received",
        received_at=datetime.fromisoformat(report["received_at"]),
        updated_at=now,
        judge_reasons=[],
        cooperating_units=[],
        deadline_basis={},
        reopen_count=0,
    )
    staged = staging.stage(session, case)
    if not staged:
        session.add(case)
    known: tuple[set[str], set[str]] | None = session.info.get(_KNOWN)
    if known is not None:
        known[1].add(case.id)
    duplicates.opened(session, case)
    await trail.append(
        session,
        case=case,
        at=now,
        actor=f"source:{case.source}",
        action="receive",
        from_status=None,
        to_status="received",
        detail={"case_number": case.case_number},
    )
    judged: dict[str, Judgement] = session.info.get(_JUDGED) or {}
    judgement = judged.pop(case.id, None) or _judge(ctx, report)
    placement, place_reasons = ctx.jurisdiction.locate(
        grid_code=case.grid_code, lon=case.lon, lat=case.lat, address=case.address or case.content
    )
    await _record_judgement(session, ctx, case, judgement, placement, place_reasons, actor=SYSTEM, at=now)
    if staged:
        staging.restage(session, case)
    return case


async def _record_judgement(
    session: AsyncSession,
    ctx: DispatchContext,
    case: Case,
    judgement: Judgement,
    placement: Placement | None,
    place_reasons: list[str],
    *,
    actor: str,
    at: datetime,
) -> None:
    if judgement.kind is not None:
        _apply_kind(ctx, case, judgement.kind)
        case.urgency = _urgency(judgement.kind, case.urgency)
    case.confidence = round(judgement.confidence, 4)
    case.judge_method = judgement.method
    case.territory = (
        {"codes": placement.codes, "names": placement.names, "method": placement.method} if placement else None
    )
    case.street_code = placement.street if placement else None
    reasons = list(judgement.reasons) + [f"placement: {r}" for r in place_reasons]
    case.updated_at = at
    await move(
        session,
        case,
        "judge",
        actor=actor,
        at=at,
        detail={
            "kind_code": case.kind_code,
            "confidence": case.confidence,
            "method": judgement.method,
            "reasons": reasons,
        },
    )
    if judgement.decision == "refuse":
        case.decision = "refuse"
        case.judge_reasons = reasons
        await emit(session, case, topics.CASE_JUDGED, at, decision="refuse", reasons=reasons)
        await move(session, case, "refuse", actor=actor, at=at, detail={"reasons": reasons})
        await emit(session, case, topics.CASE_REFUSED, at, reasons=reasons)
        return
    duplicate = await duplicates.find_duplicate(session, ctx, case) if judgement.decision != "transfer" else None
    if duplicate is not None:
        first, why = duplicate
        case.decision = "merge"
        case.judge_reasons = [*reasons, f"duplicate of {first.case_number}: {why}"]
        await emit(session, case, topics.CASE_JUDGED, at, decision="merge", reasons=case.judge_reasons)
        await duplicates.merge_into(session, case, first, reason=why, at=at)
        staging.restage(session, first)
        return
    if judgement.decision == "transfer":
        case.decision = "transfer"
        case.transfer_to = judgement.transfer_to
        case.judge_reasons = reasons
        await emit(session, case, topics.CASE_JUDGED, at, decision="transfer", reasons=reasons)
        await move(session, case, "transfer", actor=actor, at=at, detail={"to": judgement.transfer_to})
        await emit(session, case, topics.CASE_TRANSFERRED, at, transfer_to=judgement.transfer_to, emergency=True)
        return
    if judgement.decision == "dispatch" and judgement.kind is not None:
        reasons += _route(ctx, case, judgement.kind, placement)
        if case.primary_unit is not None:
            await dispatch_case(session, ctx, case, actor=actor, at=at, reasons=reasons)
            return
    case.decision = "triage"
    case.judge_reasons = reasons
    await emit(session, case, topics.CASE_JUDGED, at, decision="triage", reasons=reasons)
    await move(session, case, "triage", actor=actor, at=at, detail={"reasons": reasons})


async def dispatch_case(
    session: AsyncSession,
    ctx: DispatchContext,
    case: Case,
    *,
    actor: str,
    at: datetime,
    reasons: list[str],
    note: str = "",
) -> None:
    """Send a routed case to its units: deadlines, co-handling tasks, timers, events (派单 or re-dispatch)."""
    action = "redispatch" if case.status in ("returned", "disputed") else "dispatch"
    fresh = case.dispatched_at is None
    case.decision = "dispatch"
    case.judge_reasons = reasons
    case.dispatched_at = at
    set_deadlines(ctx, case, at, note=note)
    if case.status == "judged":
        await emit(session, case, topics.CASE_JUDGED, at, decision="dispatch", reasons=reasons)
    await move(
        session,
        case,
        action,
        actor=actor,
        at=at,
        detail={
            "primary_unit": case.primary_unit,
            "cooperating_units": case.cooperating_units,
            "deadlines": case.deadline_basis,
        },
    )
    await _open_tasks(session, ctx, case, at, fresh=fresh)
    await timers.schedule_case_timers(session, ctx, case, at, fresh=fresh)
    await emit(session, case, topics.CASE_DISPATCHED, at, redispatched=action == "redispatch", **deadlines(case))
    await assign(session, case, at, reason="redispatched" if action == "redispatch" else "dispatched")


async def _open_tasks(session: AsyncSession, ctx: DispatchContext, case: Case, at: datetime, *, fresh: bool) -> None:
    """A task per cooperating unit (协办); a town's whistled departments must also check in (报到)."""
    if not case.cooperating_units:
        return
    existing: set[str] = set()
    if not fresh:  # a fresh case has no tasks yet: no query, not even built
        await flush_buffer(session)  # tasks opened earlier in the same chunk count as existing
        query = select(CaseTask.unit_code).where(CaseTask.case_id == case.id)
        existing = set((await session.execute(query)).scalars())
    buffer = write_buffer(session)
    for unit in case.cooperating_units:
        if unit in existing:
            continue
        whistled = case.source == "town" and unit in case.requested_departments
        checkin = at + timedelta(hours=ctx.settings.checkin_hours) if whistled else None
        row: dict[str, Any] = {
            "case_id": case.id,
            "unit_code": unit,
            "role": "whistle" if whistled else "cooperating",
            "status": "assigned",
            "due_at": case.complete_deadline,
            "checkin_deadline": checkin,
        }
        if buffer is None:
            session.add(CaseTask(**row))
        else:  # one multi-row insert for the chunk's tasks, without ORM objects nobody reads
            buffer.add(_TASKS, [row])
        if checkin is not None:
            await timers.schedule_checkin(session, case, unit=unit, deadline=checkin)


_TASKS = cast(Table, CaseTask.__table__)


def deadlines(case: Case) -> dict[str, Any]:
    """Deadlines as event fields."""
    return {
        "sign_deadline": case.sign_deadline.isoformat() if case.sign_deadline else None,
        "complete_deadline": case.complete_deadline.isoformat() if case.complete_deadline else None,
        "deadline_basis": case.deadline_basis,
    }


async def lock_case(session: AsyncSession, case_id: str) -> Case:
    """Load a case for change, locking its row where the database can."""
    case = (await session.execute(select(Case).where(Case.id == case_id).with_for_update())).scalar_one_or_none()
    if case is None:
        raise NotFound(f"no case {case_id}", field="id")
    return case


async def manual_judge(
    session: AsyncSession,
    ctx: DispatchContext,
    case_id: str,
    *,
    kind_code: str,
    primary_unit: str | None,
    actor: str,
) -> Case:
    """A person at the centre decides a case waiting in triage or returned by a unit."""
    case = await lock_case(session, case_id)
    if case.status not in ("triage", "returned", "disputed"):
        raise Conflict(
            f"case {case.case_number} is {case.status}, not waiting for a person", current_status=case.status
        )
    kind = ctx.guide.kind_by_code.get(kind_code)
    if kind is None:
        raise Problem(f"unknown kind {kind_code}", field="kind_code")
    if primary_unit is not None and primary_unit not in ctx.guide.unit_by_code:
        raise Problem(f"unknown unit {primary_unit}", field="primary_unit")
    now = utcnow()
    previous_unit = case.primary_unit
    session.add(
        LabelledExample(
            case_id=case.id,
            subject=case.subject,
            detail=case.content,
            kind_code=kind.code,
            machine_kind_code=case.kind_code,
            reason={"triage": "triage", "returned": "return"}.get(case.status, "dispute"),
            decided_by=actor,
            created_at=now,
        )
    )
    _apply_kind(ctx, case, kind)
    case.updated_at = now
    placement = (
        ctx.jurisdiction.by_grid_code(case.territory["codes"]["grid"])
        if case.territory and "grid" in case.territory["codes"]
        else None
    )
    if placement is None and case.territory:
        placement = Placement(
            codes=case.territory["codes"], names=case.territory["names"], method=case.territory["method"]
        )
    problems = _route(ctx, case, kind, placement)
    if primary_unit is not None:
        case.primary_unit = primary_unit
        case.cooperating_units = [u for u in case.cooperating_units if u != primary_unit]
    elif problems:
        raise Problem("; ".join(problems) + "; name primary_unit", field="primary_unit")
    reasons = [f"judged by {actor}: {kind.code} {kind.name}"]
    if previous_unit and previous_unit != case.primary_unit:
        reasons.append(f"re-routed from {previous_unit}")
    case.confidence = 1.0
    case.judge_method = "person"
    await dispatch_case(session, ctx, case, actor=actor, at=now, reasons=reasons)
    return case


async def apply_verdict(session: AsyncSession, ctx: DispatchContext, data: dict[str, Any], at: datetime) -> Case | None:
    """Evaluation's verdict after the call-back (回访): close the case, or reopen it to the same unit (重办)."""
    case = (
        await session.execute(select(Case).where(Case.id == data["case_id"]).with_for_update())
    ).scalar_one_or_none()
    if case is None or case.status != "completed":
        return None
    feedback = data.get("feedback")
    await move(session, case, "call_back", actor="system:evaluation", at=at, detail={"feedback": feedback})
    await emit(session, case, topics.CASE_CALLED_BACK, at, feedback=feedback, verdict=data["verdict"])
    if data["verdict"] == "closed":
        await move(session, case, "close", actor="system:evaluation", at=at, detail={"verdict": "closed"})
        await emit(session, case, topics.CASE_CLOSED, at, feedback=feedback)
        return case
    case.reopen_count += 1
    await move(session, case, "reopen", actor="system:evaluation", at=at, detail={"round": case.reopen_count})
    set_deadlines(ctx, case, at, note=f"reopened (round {case.reopen_count})")
    await timers.schedule_case_timers(session, ctx, case, at)
    await emit(session, case, topics.CASE_REOPENED, at, feedback=feedback, **deadlines(case))
    await assign(session, case, at, reason="reopened")
    if case.reopen_count > ctx.settings.max_reopens:
        detail = {"reason": f"reopened {case.reopen_count} times (limit {ctx.settings.max_reopens})"}
        await trail.append(
            session,
            case=case,
            at=at,
            actor="system:evaluation",
            action="supervise",
            from_status=case.status,
            to_status=case.status,
            detail=detail,
        )
        await emit(session, case, topics.CASE_SUPERVISED, at, **detail)
    return case


async def get_case(session: AsyncSession, case_id: str) -> Case:
    """A case by id or case number, or 404."""
    case = (
        await session.execute(select(Case).where((Case.id == case_id) | (Case.case_number == case_id)))
    ).scalar_one_or_none()
    if case is None:
        raise NotFound(f"no case {case_id}", field="id")
    return case


async def list_cases(
    session: AsyncSession,
    *,
    status: list[str],
    unit: str | None,
    kind: str | None,
    street: str | None,
    source: str | None,
    limit: int,
    offset: int,
    visible: ColumnElement[bool] | None = None,
) -> tuple[list[Case], int]:
    """Cases matching the filters (and ``visible``, the caller's reach), newest first, and how many match in all."""
    query = select(Case)
    if visible is not None:
        query = query.where(visible)
    if status:
        query = query.where(Case.status.in_(status))
    if unit:
        query = query.where(Case.primary_unit == unit)
    if kind:
        query = query.where(Case.kind_code == kind)
    if street:
        query = query.where(Case.street_code == street)
    if source:
        query = query.where(Case.source == source)
    total = (await session.execute(select(func.count()).select_from(query.subquery()))).scalar_one()
    rows = await session.execute(query.order_by(Case.received_at.desc(), Case.id).limit(limit).offset(offset))
    return list(rows.scalars()), int(total)

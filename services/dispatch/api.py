"""Dispatch routes: cases, the unit's actions, triage and the guide."""

from __future__ import annotations

import csv
import io
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.dispatch import api_scope, handling, service, trail
from services.dispatch.context import DispatchContext
from services.dispatch.models import Case, CaseEntry, LabelledExample
from services.dispatch.schemas import (
    CasePage,
    CaseRead,
    CheckInCreate,
    CompleteCreate,
    DisputeDecision,
    DisputeEscalate,
    DisputeRead,
    ExtensionCreate,
    ExtensionDecision,
    ExtensionRead,
    JudgeCreate,
    ProgressCreate,
    RatingCreate,
    ReturnCreate,
    SignCreate,
    TaskRead,
    TaskReportCreate,
    Territory,
    Timeline,
    TrailEntry,
)
from services.dispatch.states import STATUSES
from shared.app import db_session, runtime_of
from shared.auth import Principal, auth_of, forbid, require
from shared.auth.scope import unit_refusal
from shared.problems import NotFound
from shared.routing import JSONRoute
from shared.timefields import IsoDateTime

router = APIRouter(prefix="/v1", tags=["cases"], route_class=JSONRoute)
Session = Annotated[AsyncSession, Depends(db_session)]
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"description": "the case's status forbids the action; the body names the current status"}
}
# Who may: a unit its own cases, a town its territory, staff and admin every case (shared/auth/roles.py).
Reader = Annotated[Principal, Depends(require("cases:read"))]
Actor = Annotated[Principal, Depends(require("cases:act"))]
Decider = Annotated[Principal, Depends(require("dispatch:decide"))]
Rater = Annotated[Principal, Depends(require("cases:rate"))]
Escalator = Annotated[Principal, Depends(require("cases:escalate"))]


async def _seen_case(request: Request, session: AsyncSession, principal: Principal, case_id: str) -> Case:
    """A case the caller may see; one outside its scope is answered as not found (and audited)."""
    case = await service.get_case(session, case_id)
    if not await api_scope.sees(session, principal, case):
        await auth_of(request).record_refusal(
            request, principal=principal, action="cases:read", status=404, reason="case outside the scope"
        )
        raise NotFound(f"no case {case_id}", field="id")
    return case


async def _may_act(
    request: Request, session: AsyncSession, principal: Principal, case_id: str, *, unit_code: str | None, action: str
) -> None:
    """Refuse (403) acting as another unit, or on a case outside the caller's scope."""
    refusal = unit_refusal(principal, unit_code) if unit_code is not None and principal.role == "unit" else None
    if refusal is not None:
        await forbid(request, principal, action=action, detail=refusal, field="unit_code")
    case = await service.get_case(session, case_id)
    if not await api_scope.sees(session, principal, case):
        detail = f"case {case_id} is outside this credential's scope"
        await forbid(request, principal, action=action, detail=detail, field="case_id")


def context_of(request: Request) -> DispatchContext:
    """The guide, jurisdiction and judge of this process."""
    ctx: DispatchContext = request.app.state.dispatch
    return ctx


def _entry(entry: CaseEntry) -> TrailEntry:
    return TrailEntry(
        seq=entry.seq,
        at=entry.at,
        actor=entry.actor,
        action=entry.action,
        from_status=entry.from_status,
        to_status=entry.to_status,
        detail=entry.detail,
        hash=entry.hash,
    )


def to_read(case: Case, ctx: DispatchContext, entries: list[CaseEntry] | None = None) -> CaseRead:
    """The API view of a case."""
    kind = ctx.guide.kind_by_code.get(case.kind_code or "")
    return CaseRead(
        id=case.id,
        case_number=case.case_number,
        source=case.source,
        status=case.status,
        content=case.content,
        subject=case.subject,
        address=case.address,
        urgency=case.urgency,
        domain_code=case.domain_code,
        category_code=case.category_code,
        kind_code=case.kind_code,
        kind_name=kind.name if kind else None,
        confidence=case.confidence,
        decision=case.decision,
        judge_method=case.judge_method,
        judge_reasons=case.judge_reasons,
        territory=Territory(**case.territory) if case.territory else None,
        primary_unit=case.primary_unit,
        cooperating_units=case.cooperating_units,
        transfer_to=case.transfer_to,
        sign_deadline=case.sign_deadline,
        complete_deadline=case.complete_deadline,
        deadline_basis=case.deadline_basis,
        reopen_count=case.reopen_count,
        result=case.result,
        reporter_phone=case.reporter_phone_masked,
        received_at=case.received_at,
        updated_at=case.updated_at,
        timeline=[_entry(e) for e in entries or []],
    )


async def detailed(session: AsyncSession, case: Case, ctx: DispatchContext) -> CaseRead:
    """A case with its timeline, tasks, extensions and disputes (inside the caller's transaction)."""
    view = to_read(case, ctx, await trail.entries_of(session, case.id))
    view.returns = case.returns
    view.merged_into = case.merged_into
    view.merged_cases = case.merged_cases
    view.tasks = [TaskRead.model_validate(t, from_attributes=True) for t in await handling.tasks_of(session, case.id)]
    view.extensions = [
        ExtensionRead.model_validate(e, from_attributes=True) for e in await handling.extensions_of(session, case.id)
    ]
    view.disputes = [
        DisputeRead.model_validate(d, from_attributes=True) for d in await handling.disputes_of(session, case.id)
    ]
    return view


@router.get("/cases", response_model=CasePage)
async def list_cases(
    request: Request,
    session: Session,
    caller: Reader,
    status: Annotated[list[str], Query(description="one or more statuses")] = [],  # noqa: B006
    unit: Annotated[str | None, Query(max_length=64, description="primary unit code")] = None,
    kind: Annotated[str | None, Query(max_length=32)] = None,
    street: Annotated[str | None, Query(max_length=32, description="street/town code")] = None,
    source: Annotated[str | None, Query(pattern="^(hotline|grid|town)$")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> CasePage:
    """Cases with filters, newest first."""
    unknown = [s for s in status if s not in STATUSES]
    if unknown:
        from shared.problems import Problem

        raise Problem(f"unknown status {', '.join(unknown)}; known: {', '.join(sorted(STATUSES))}", field="status")
    async with session.begin():
        rows, total = await api_scope.list_visible(
            session,
            caller,
            status=status,
            unit=unit,
            kind=kind,
            street=street,
            source=source,
            limit=limit,
            offset=offset,
        )
    ctx = context_of(request)
    return CasePage(items=[to_read(c, ctx) for c in rows], total=total, limit=limit, offset=offset)


@router.get("/triage", response_model=CasePage)
async def triage_queue(
    request: Request,
    session: Session,
    _caller: Decider,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> CasePage:
    """Cases waiting for a person: doubtful judgements, returned cases and open disputes."""
    async with session.begin():
        rows, total = await service.list_cases(
            session,
            status=["triage", "returned", "disputed"],
            unit=None,
            kind=None,
            street=None,
            source=None,
            limit=limit,
            offset=offset,
        )
    ctx = context_of(request)
    return CasePage(items=[to_read(c, ctx) for c in rows], total=total, limit=limit, offset=offset)


@router.get("/cases/{case_id}", response_model=CaseRead)
async def read_case(case_id: str, request: Request, session: Session, caller: Reader) -> CaseRead:
    """A case with its timeline, tasks, extensions and disputes; the id or the case number."""
    async with session.begin():
        return await detailed(session, await _seen_case(request, session, caller, case_id), context_of(request))


@router.get("/cases/{case_id}/timeline", response_model=Timeline)
async def read_timeline(case_id: str, request: Request, session: Session, caller: Reader) -> Timeline:
    """The case's trail (留痕) and a verification of its hash chain."""
    async with session.begin():
        case = await _seen_case(request, session, caller, case_id)
        entries = await trail.entries_of(session, case.id)
    ok, broken = trail.verify(entries)
    return Timeline(case_id=case.id, entries=[_entry(e) for e in entries], verified=ok, first_broken_seq=broken)


async def _act(
    request: Request, session: AsyncSession, caller: Principal, case_id: str, action: str, body: Any
) -> CaseRead:
    detail = body.model_dump(exclude={"unit_code"}, exclude_none=True)
    ctx = context_of(request)
    async with session.begin():
        await _may_act(request, session, caller, case_id, unit_code=body.unit_code, action=f"cases:{action}")
        case = await handling.unit_action(session, ctx, case_id, action=action, unit_code=body.unit_code, detail=detail)
        view = await detailed(session, case, ctx)
    runtime_of(request).outbox_written()
    return view


@router.post("/cases/{case_id}/sign", response_model=CaseRead, responses=CONFLICT)
async def sign(case_id: str, body: SignCreate, request: Request, session: Session, caller: Actor) -> CaseRead:
    """签收: the primary unit takes the case."""
    return await _act(request, session, caller, case_id, "sign", body)


@router.post("/cases/{case_id}/progress", response_model=CaseRead, responses=CONFLICT)
async def progress(case_id: str, body: ProgressCreate, request: Request, session: Session, caller: Actor) -> CaseRead:
    """A progress note; the case is then in progress."""
    return await _act(request, session, caller, case_id, "progress", body)


@router.post("/cases/{case_id}/return", response_model=CaseRead, responses=CONFLICT)
async def return_case(case_id: str, body: ReturnCreate, request: Request, session: Session, caller: Actor) -> CaseRead:
    """退单: the unit says the case is not its own; it goes back to the centre with the reason."""
    return await _act(request, session, caller, case_id, "return", body)


@router.post("/cases/{case_id}/complete", response_model=CaseRead, responses=CONFLICT)
async def complete(case_id: str, body: CompleteCreate, request: Request, session: Session, caller: Actor) -> CaseRead:
    """办结: the unit reports the result and its reply to the citizen."""
    return await _act(request, session, caller, case_id, "complete", body)


@router.post("/cases/{case_id}/judge", response_model=CaseRead, responses=CONFLICT)
async def judge(case_id: str, body: JudgeCreate, request: Request, session: Session, _caller: Decider) -> CaseRead:
    """A person decides a case in triage (or returned) and it is dispatched."""
    ctx = context_of(request)
    async with session.begin():
        case = await service.manual_judge(
            session, ctx, case_id, kind_code=body.kind_code, primary_unit=body.primary_unit, actor=body.actor
        )
        view = await detailed(session, case, ctx)
    runtime_of(request).outbox_written()
    return view


async def _changed(
    request: Request,
    session: AsyncSession,
    change: Callable[[], Awaitable[Any]],
    case_id: str,
    *,
    scope: tuple[Principal, str, str | None] | None = None,
) -> CaseRead:
    """Apply a change in one transaction; ``scope`` is (caller, action, unit acted for) when the caller is limited."""
    ctx = context_of(request)
    async with session.begin():
        if scope is not None:
            caller, action, unit_code = scope
            await _may_act(request, session, caller, case_id, unit_code=unit_code, action=action)
        await change()
        view = await detailed(session, await service.get_case(session, case_id), ctx)
    runtime_of(request).outbox_written()
    return view


@router.post("/cases/{case_id}/extension", response_model=CaseRead, responses=CONFLICT)
async def ask_extension(
    case_id: str, body: ExtensionCreate, request: Request, session: Session, caller: Actor
) -> CaseRead:
    """延期: the primary unit asks for more working days, before the completion deadline."""
    return await _changed(
        request,
        session,
        lambda: handling.request_extension(
            session, case_id, unit_code=body.unit_code, working_days=body.working_days, reason=body.reason
        ),
        case_id,
        scope=(caller, "cases:extension", body.unit_code),
    )


@router.post("/cases/{case_id}/extension/decision", response_model=CaseRead, responses=CONFLICT)
async def decide_extension(
    case_id: str, body: ExtensionDecision, request: Request, session: Session, _caller: Decider
) -> CaseRead:
    """The dispatch centre grants or refuses the pending extension; a grant moves the deadline and its timers."""
    ctx = context_of(request)
    return await _changed(
        request,
        session,
        lambda: handling.decide_extension(
            session, ctx, case_id, granted=body.granted, actor=body.actor, reason=body.reason
        ),
        case_id,
    )


@router.post("/cases/{case_id}/checkin", response_model=CaseRead, responses=CONFLICT)
async def check_in(case_id: str, body: CheckInCreate, request: Request, session: Session, caller: Actor) -> CaseRead:
    """报到: a department the town whistled for reports in on site."""
    return await _changed(
        request,
        session,
        lambda: handling.check_in(session, case_id, unit_code=body.unit_code, note=body.note),
        case_id,
        scope=(caller, "cases:checkin", body.unit_code),
    )


@router.post("/cases/{case_id}/tasks/report", response_model=CaseRead, responses=CONFLICT)
async def report_task(
    case_id: str, body: TaskReportCreate, request: Request, session: Session, caller: Actor
) -> CaseRead:
    """A cooperating (协办) or whistled unit records what it did; the primary's completion shows it."""
    return await _changed(
        request,
        session,
        lambda: handling.report_task(session, case_id, unit_code=body.unit_code, report=body.report),
        case_id,
        scope=(caller, "cases:task-report", body.unit_code),
    )


@router.post("/cases/{case_id}/ratings", response_model=CaseRead, responses=CONFLICT)
async def rate(case_id: str, body: RatingCreate, request: Request, session: Session, caller: Rater) -> CaseRead:
    """The town rates a department it called; evaluation counts it as the bottom-up share."""
    return await _changed(
        request,
        session,
        lambda: handling.rate_whistled(
            session, case_id, unit_code=body.unit_code, score=body.score, comment=body.comment, rated_by=body.rated_by
        ),
        case_id,
        # The rated unit_code is the whistled department, not the caller: only the territory is checked.
        scope=(caller, "cases:rate", None),
    )


@router.post("/cases/{case_id}/dispute/escalate", response_model=CaseRead, responses=CONFLICT)
async def escalate(
    case_id: str, body: DisputeEscalate, request: Request, session: Session, caller: Escalator
) -> CaseRead:
    """三级会商: the level could not settle it; street → district → city."""
    return await _changed(
        request,
        session,
        lambda: handling.escalate_dispute(session, case_id, actor=body.actor, reason=body.reason),
        case_id,
        scope=(caller, "cases:escalate", None),
    )


@router.post("/cases/{case_id}/dispute/decision", response_model=CaseRead, responses=CONFLICT)
async def settle(case_id: str, body: DisputeDecision, request: Request, session: Session, _caller: Decider) -> CaseRead:
    """The level holding the dispute decides; the case is re-dispatched to the unit it names."""
    ctx = context_of(request)
    return await _changed(
        request,
        session,
        lambda: handling.decide_dispute(
            session,
            ctx,
            case_id,
            level=body.level,
            decided_by=body.decided_by,
            primary_unit=body.primary_unit,
            cooperating_units=body.cooperating_units,
            reason=body.reason,
        ),
        case_id,
    )


@router.get("/labelled-examples", responses={200: {"content": {"text/csv": {}}}})
async def labelled_examples(
    session: Session,
    _caller: Decider,
    since: Annotated[IsoDateTime | None, Query(description="only decisions made at or after this time")] = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 10_000,
) -> Response:
    """People's decisions as training rows: CSV with ``id, subject, detail, label`` for `jiesu model train`."""
    async with session.begin():
        query = select(LabelledExample).order_by(LabelledExample.id).limit(limit)
        if since is not None:
            query = query.where(LabelledExample.created_at >= since)
        rows = list((await session.execute(query)).scalars())
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["id", "subject", "detail", "label", "machine_label", "reason", "decided_by", "decided_at"])
    for row in rows:
        writer.writerow(
            [
                f"case-{row.case_id}-{row.id}",
                row.subject or "",
                row.detail,
                row.kind_code,
                row.machine_kind_code or "",
                row.reason,
                row.decided_by,
                row.created_at.isoformat(),
            ]
        )
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8")


guide_router = APIRouter(prefix="/v1", tags=["guide"], route_class=JSONRoute)


@guide_router.get("/guide", dependencies=[Depends(require("guide:read"))])
async def read_guide(request: Request) -> dict[str, Any]:
    """The dispatch guide in force: domains, categories with their kinds, units, version."""
    guide = context_of(request).guide
    kinds_by_category: dict[str, list[dict[str, Any]]] = {}
    for kind in guide.kinds:
        kinds_by_category.setdefault(kind.category, []).append(kind.model_dump())
    return {
        "version": guide.version,
        "name": guide.name,
        "domains": [d.model_dump() for d in guide.domains],
        "categories": [c.model_dump() | {"kinds": kinds_by_category.get(c.code, [])} for c in guide.categories],
        "units": [u.model_dump() for u in guide.units],
        "counts": {"categories": len(guide.categories), "kinds": len(guide.kinds), "units": len(guide.units)},
    }

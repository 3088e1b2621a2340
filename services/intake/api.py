"""Intake routes: receive a report, read it back."""

from __future__ import annotations

from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake import service
from services.intake.api_scope import Reader, Reporter, may_report
from services.intake.group_commit import committer_for
from services.intake.schemas import BatchAccepted, BatchItem, ReportAccepted, ReportBatch, ReportCreate, ReportRead
from services.intake.settings import IntakeSettings
from shared.app import db_session, runtime_of
from shared.auth import record_access
from shared.problems import Problem
from shared.routing import JSONRoute

router = APIRouter(prefix="/v1", tags=["reports"], route_class=JSONRoute)
Session = Annotated[AsyncSession, Depends(db_session)]
REPLAYED = {"Idempotent-Replayed": "true"}


def _settings(request: Request) -> IntakeSettings:
    settings = runtime_of(request).settings
    assert isinstance(settings, IntakeSettings)
    return settings


@router.post(
    "/reports",
    status_code=201,
    response_model=ReportAccepted,
    responses={409: {"description": "external_id reused for a different report"}},
)
async def create_report(body: ReportCreate, request: Request, caller: Reporter) -> Response:
    """Receive a report (接). The same (source, external_id) again returns the first answer."""
    await may_report(request, caller, [body], batch=False)
    # Concurrent requests share one transaction (group commit); each is answered after the commit holding it.
    stored = await committer_for(request).submit(body)
    row, created = stored.row, stored.created
    if created:
        runtime_of(request).outbox_written()
    assert row.case_number is not None
    # Serialised once here; response_model still documents it, but FastAPI does not validate and encode it again.
    answer = ReportAccepted(id=row.id, case_number=row.case_number, status="received")
    return Response(
        answer.model_dump_json(),
        status_code=201,
        media_type="application/json",
        headers=None if created else REPLAYED,
    )


@router.post("/reports/batch", response_model=BatchAccepted)
async def create_reports(body: ReportBatch, request: Request, session: Session, caller: Reporter) -> BatchAccepted:
    """Receive many reports at once; any invalid one refuses the whole batch (422), nothing stored.

    Each report is idempotent on (source, external_id) as in ``POST /v1/reports``: a repeat is a replay (200),
    a different report under a used id is a conflict (409); the others are accepted (201).
    """
    settings = _settings(request)
    if len(body.reports) > settings.max_batch_reports:
        raise Problem(f"at most {settings.max_batch_reports} reports per batch", field="reports")
    await may_report(request, caller, body.reports, batch=True)
    personal_data = settings.personal_data()
    results: list[BatchItem | None] = [None] * len(body.reports)
    async with session.begin():
        known = await service.find_many(session, [(r.source, r.external_id) for r in body.reports])
        fresh: dict[tuple[str, str], int] = {}
        for index, report in enumerate(body.reports):
            key: tuple[str, str] = (report.source, report.external_id)
            if key in known or key in fresh:
                continue
            fresh[key] = index
        rows = await service.accept_reports(
            session,
            [body.reports[i] for i in fresh.values()],
            number_prefix=settings.case_number_prefix,
            tz=ZoneInfo(settings.timezone),
            personal_data=personal_data,
        )
        for (fresh_key, index), row in zip(fresh.items(), rows, strict=True):
            known[fresh_key] = row
            results[index] = BatchItem.model_construct(index=index, status=201, id=row.id, case_number=row.case_number)
        for index, report in enumerate(body.reports):
            if results[index] is not None:
                continue
            first = known[(report.source, report.external_id)]
            if first.fingerprint == service.fingerprint(report, secret=personal_data.caller_secret):
                results[index] = BatchItem(index=index, status=200, id=first.id, case_number=first.case_number)
            else:
                results[index] = BatchItem(
                    index=index,
                    status=409,
                    case_number=first.case_number,
                    detail=f"external_id {report.external_id!r} already used for a different report",
                )
    if rows:
        runtime_of(request).outbox_written()
    done = [r for r in results if r is not None]
    return BatchAccepted(
        accepted=sum(r.status == 201 for r in done),
        replayed=sum(r.status == 200 for r in done),
        conflicts=sum(r.status == 409 for r in done),
        results=done,
    )


@router.get("/reports/{report_id}", response_model=ReportRead)
async def read_report(report_id: str, request: Request, session: Session, caller: Reader) -> ReportRead:
    """A report with its current case status; a read of its reporter is audited."""
    async with session.begin():
        view = service.to_read(await service.get_report(session, report_id))
    if view.reporter is not None:
        await record_access(request, caller, action="reports:read-reporter", detail={"report_id": view.id})
    return view

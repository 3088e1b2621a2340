"""Intake routes: receive a report, read it back."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake import service
from services.intake.schemas import ReportAccepted, ReportCreate, ReportRead
from services.intake.settings import IntakeSettings
from shared.app import db_session, runtime_of

router = APIRouter(prefix="/v1", tags=["reports"])
Session = Annotated[AsyncSession, Depends(db_session)]


@router.post(
    "/reports",
    status_code=201,
    response_model=ReportAccepted,
    responses={409: {"description": "external_id reused for a different report"}},
)
async def create_report(body: ReportCreate, request: Request, response: Response, session: Session) -> ReportAccepted:
    """Receive a report (接). The same (source, external_id) again returns the first answer."""
    settings = runtime_of(request).settings
    assert isinstance(settings, IntakeSettings)
    try:
        async with session.begin():
            existing = await service.find_by_external_id(session, source=body.source, external_id=body.external_id)
            if existing is None:
                row = await service.accept_report(session, body, number_prefix=settings.case_number_prefix)
            else:
                service.check_replay(existing, body)
                row = existing
                response.headers["Idempotent-Replayed"] = "true"
    except IntegrityError:
        # Another request with the same external id won the race: answer as a replay of it.
        async with session.begin():
            found = await service.find_by_external_id(session, source=body.source, external_id=body.external_id)
            if found is None:
                raise
            service.check_replay(found, body)
            row = found
            response.headers["Idempotent-Replayed"] = "true"
    else:
        if existing is None:
            runtime_of(request).outbox_written()
    assert row.case_number is not None
    return ReportAccepted(id=row.id, case_number=row.case_number, status="received")


@router.get("/reports/{report_id}", response_model=ReportRead)
async def read_report(report_id: str, session: Session) -> ReportRead:
    """A report with its current case status."""
    async with session.begin():
        return service.to_read(await service.get_report(session, report_id))

"""The reporter in full (来电人信息): the one route that opens a reporter's sealed personal data."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake import service
from services.intake.schemas import ReporterRevealed
from services.intake.settings import IntakeSettings
from shared.app import db_session, runtime_of
from shared.auth import Principal, record_access, require
from shared.pii import PersonalDataError
from shared.problems import Problem
from shared.routing import JSONRoute

router = APIRouter(prefix="/v1", tags=["reporter"], route_class=JSONRoute)
Session = Annotated[AsyncSession, Depends(db_session)]
Revealer = Annotated[Principal, Depends(require("reporter:reveal"))]


class SealedReporterUnreadable(Problem):
    """The key that sealed a reporter is not configured (or the value was altered)."""

    status = 500
    type_slug = "personal-data-key"


@router.get("/reports/{report_id}/reporter", response_model=ReporterRevealed)
async def read_reporter(
    report_id: str, request: Request, response: Response, session: Session, caller: Revealer
) -> ReporterRevealed:
    """The reporter's name, phone and ID number in full: for the hotline, staff and admin only; every read audited."""
    settings = runtime_of(request).settings
    assert isinstance(settings, IntakeSettings)
    async with session.begin():
        row = await service.get_report(session, report_id)
    # Personal data must not stay in shared or browser caches.
    response.headers["Cache-Control"] = "no-store"
    try:
        revealed = service.reveal(row, settings.personal_data())
    except PersonalDataError as exc:
        raise SealedReporterUnreadable(f"the reporter of {report_id} cannot be opened: {exc}") from None
    # Audited before it is sent: a reveal the audit log cannot record is not made.
    await record_access(request, caller, action="reporter:reveal", detail={"report_id": row.id})
    return revealed

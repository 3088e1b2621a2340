"""Who may post which report: hotline its calls, a grid worker its grids, a town its territory (街道)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Annotated

from fastapi import Depends, Request

from services.intake.schemas import ReportCreate
from services.intake.settings import IntakeSettings
from shared.app import runtime_of
from shared.auth import Principal, forbid, require
from shared.auth.scope import report_refusal
from shared.jurisdiction import Jurisdiction, load_jurisdiction

Reporter = Annotated[Principal, Depends(require("reports:create"))]
Reader = Annotated[Principal, Depends(require("reports:read"))]


async def _jurisdiction(request: Request) -> Jurisdiction:
    """The jurisdiction that places a town's report, loaded once per app on first need."""
    loaded: Jurisdiction | None = getattr(request.app.state, "jurisdiction", None)
    if loaded is None:
        settings = runtime_of(request).settings
        assert isinstance(settings, IntakeSettings)
        loaded = await asyncio.to_thread(load_jurisdiction, settings.jurisdiction_path)
        request.app.state.jurisdiction = loaded
    return loaded


async def may_report(request: Request, caller: Principal, reports: Sequence[ReportCreate], *, batch: bool) -> None:
    """Refuse (403, naming the report's field) a report outside the caller's source or territory."""
    if caller.role not in ("hotline", "grid", "town"):
        return
    jurisdiction = await _jurisdiction(request) if caller.role == "town" else None
    for index, report in enumerate(reports):
        street = None
        if jurisdiction is not None:
            lon, lat = (report.location.lon, report.location.lat) if report.location else (None, None)
            placement, _ = jurisdiction.locate(grid_code=report.grid_code, lon=lon, lat=lat, address=report.address)
            street = placement.street if placement else None
        refusal = report_refusal(caller, source=report.source, grid_code=report.grid_code, street=street)
        if refusal is not None:
            field, reason = refusal
            where = f"reports.{index}.{field}" if batch else field
            await forbid(request, caller, action="reports:create", detail=reason, field=where)

"""What the GeoReport routes load once per process: the catalogue of services and the intake settings."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import Depends, FastAPI, Query, Request

from services.intake.open311.catalogue import Catalogue
from services.intake.open311.render import Open311Error
from services.intake.settings import IntakeSettings


@dataclass(frozen=True)
class Open311Context:
    """The catalogue and settings the GeoReport routes share."""

    catalogue: Catalogue
    settings: IntakeSettings
    tz: ZoneInfo


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Load the guide once the intake runtime is up (a bad guide file stops the start, not a request)."""
    settings = app.state.runtime.settings
    assert isinstance(settings, IntakeSettings)
    catalogue = await asyncio.to_thread(
        Catalogue.load, guide_path=settings.guide_path, jurisdiction_path=settings.jurisdiction_path
    )
    app.state.open311 = Open311Context(catalogue=catalogue, settings=settings, tz=ZoneInfo(settings.timezone))
    yield


def open311_context(
    request: Request,
    jurisdiction_id: Annotated[
        str | None,
        Query(max_length=100, description="optional: this endpoint serves one jurisdiction (see discovery)"),
    ] = None,
) -> Open311Context:
    """The shared context, once the request's jurisdiction_id (if any) is known to be ours."""
    context: Open311Context = request.app.state.open311
    if jurisdiction_id is not None and jurisdiction_id != context.settings.open311_jurisdiction_id:
        raise Open311Error(404, f"jurisdiction_id {jurisdiction_id} not found")
    return context


Context = Annotated[Open311Context, Depends(open311_context)]

"""The intake service (接 receive)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from services.intake.api import router
from services.intake.api_reporter import router as reporter_router
from services.intake.consumers import consumer_specs
from services.intake.models import messaging
from services.intake.open311.api import router as open311_router
from services.intake.settings import IntakeSettings
from shared.app import build_app
from shared.auth import AuthSettings
from shared.bus.base import Bus

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(
    settings: IntakeSettings | None = None,
    *,
    bus: Bus | None = None,
    migrate_on_start: bool = False,
    auth: AuthSettings | None = None,
) -> FastAPI:
    """Build the intake app."""
    settings = settings or IntakeSettings()
    return build_app(
        name="intake",
        title="jiesu intake",
        description="Receives reports from the 12345 hotline, grid workers and towns (接).",
        settings=settings,
        tables=messaging,
        consumer_specs=consumer_specs,
        routers=[router, reporter_router, open311_router],
        migrations=MIGRATIONS,
        bus=bus,
        migrate_on_start=migrate_on_start,
        auth=auth,
        body_limits={"/v1/reports/batch": settings.max_batch_bytes},
    )

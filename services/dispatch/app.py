"""The dispatch service (判 judge, 办 handle)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from services.dispatch import timers
from services.dispatch.api import guide_router, router
from services.dispatch.consumers import consumer_specs
from services.dispatch.context import DispatchContext
from services.dispatch.models import messaging
from services.dispatch.settings import DispatchSettings
from shared.app import build_app
from shared.auth import AuthSettings
from shared.auth.admin import router as credentials_router
from shared.bus.base import Bus
from shared.runtime import ServiceRuntime

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(
    settings: DispatchSettings | None = None,
    *,
    bus: Bus | None = None,
    migrate_on_start: bool = False,
    auth: AuthSettings | None = None,
) -> FastAPI:
    """Build the dispatch app; the guide and jurisdiction are loaded and validated here."""
    settings = settings or DispatchSettings()
    ctx = DispatchContext.load(settings)

    def remember(app: FastAPI, _runtime: ServiceRuntime) -> None:
        app.state.dispatch = ctx

    return build_app(
        name="dispatch",
        title="jiesu dispatch",
        description="Judges reports by the dispatch guide, routes them to units, tracks handling (判、办).",
        settings=settings,
        tables=messaging,
        consumer_specs=lambda namespace: consumer_specs(namespace, ctx),
        routers=[router, guide_router, credentials_router],
        migrations=MIGRATIONS,
        bus=bus,
        migrate_on_start=migrate_on_start,
        auth=auth,
        on_start=remember,
        background=[lambda runtime: timers.run(runtime.sessions, ctx, runtime.stop)] if settings.timers else [],
    )

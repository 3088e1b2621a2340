"""The evaluation service (评 evaluate, 用 use)."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

from fastapi import FastAPI

from services.evaluation import api, api_metrics, api_use
from services.evaluation.consumers import consumer_specs
from services.evaluation.models import messaging
from services.evaluation.settings import EvaluationSettings
from shared.app import build_app
from shared.auth import AuthSettings
from shared.bus.base import Bus

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(
    settings: EvaluationSettings | None = None,
    *,
    bus: Bus | None = None,
    migrate_on_start: bool = False,
    auth: AuthSettings | None = None,
) -> FastAPI:
    """Build the evaluation app."""
    settings = settings or EvaluationSettings()
    tz = ZoneInfo(settings.timezone)
    return build_app(
        name="evaluation",
        title="jiesu evaluation",
        description="Call-backs, case scores, rates and fair rankings, hot spots and guide suggestions (评、用).",
        settings=settings,
        tables=messaging,
        consumer_specs=lambda namespace: consumer_specs(namespace, tz, cell_m=settings.hotspot_radius_m),
        routers=[api.router, api_metrics.router, api_use.router],
        migrations=MIGRATIONS,
        bus=bus,
        migrate_on_start=migrate_on_start,
        auth=auth,
    )

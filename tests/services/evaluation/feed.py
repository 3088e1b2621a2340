"""Evaluation on its own: the app with consumers off, and dispatch's case events fed through its handlers."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from fastapi import FastAPI

from services.evaluation.app import MIGRATIONS, create_app
from services.evaluation.consumers import consumer_specs
from services.evaluation.models import messaging
from services.evaluation.settings import EvaluationSettings
from shared import topics
from shared.bus.base import Delivery
from shared.consumer import handle_delivery
from shared.events import CloudEvent
from shared.migrate import upgrade_async
from tests.helpers import running

TZ = ZoneInfo("Asia/Shanghai")
_numbers = itertools.count(1)


@dataclass
class Evaluation:
    """The running evaluation app and a way to feed it events."""

    app: FastAPI
    client: httpx.AsyncClient
    settings: EvaluationSettings

    async def send(self, event: CloudEvent) -> None:
        """Hand one event to the consumer that would receive it, in its own transaction."""
        specs = consumer_specs("", ZoneInfo(self.settings.timezone), cell_m=self.settings.hotspot_radius_m)
        spec = next((s for s in specs if event.type in s.handlers), specs[0])
        topic = spec.topics[0]
        delivery = Delivery(topic=topic, partition=0, offset=0, key=event.subject, event=event)
        runtime = self.app.state.runtime
        await handle_delivery(delivery, spec=spec, sessions=runtime.sessions, tables=messaging)


@asynccontextmanager
async def evaluation_app(database_url: str, var: Path, **overrides: Any) -> AsyncIterator[Evaluation]:
    """Evaluation migrated and running on a database, consumers and relay off."""
    await upgrade_async(script_location=MIGRATIONS, database_url=database_url)
    settings = EvaluationSettings(
        database_url=database_url,
        embedded_bus_url=f"sqlite+aiosqlite:///{var / 'bus.db'}",
        consumers=False,
        relay=False,
        **overrides,
    )
    app = create_app(settings)
    async with running(app) as client:
        yield Evaluation(app=app, client=client, settings=settings)


@dataclass
class Case:
    """A case as dispatch would describe it in its events."""

    kind: str
    category: str
    unit: str
    source: str = "hotline"
    street: str | None = "110199001"
    community: str | None = "110199001001"
    grid: str | None = "11019900100101"
    urgency: str = "normal"
    status: str = "received"
    reopen_count: int = 0
    case_id: str = field(default_factory=lambda: f"case-{next(_numbers):06d}")

    @property
    def number(self) -> str:
        return f"N{self.case_id[-6:]}"

    def territory(self) -> dict[str, Any] | None:
        if self.street is None:
            return None
        codes = {"district": "110199", "street": self.street}
        if self.community:
            codes["community"] = self.community
        if self.grid:
            codes["grid"] = self.grid
        names = {level: f"name-{code}" for level, code in codes.items()}
        return {"codes": codes, "names": names, "method": "grid_code"}

    def event(self, event_type: str, at: datetime, status: str | None = None, **extra: Any) -> CloudEvent:
        """One case event with everything ``case_summary`` carries, plus the extra fields."""
        if status is not None:
            self.status = status
        data = {
            "case_id": self.case_id,
            "case_number": self.number,
            "status": self.status,
            "source": self.source,
            "kind_code": self.kind,
            "category_code": self.category,
            "domain_code": None,
            "primary_unit": self.unit,
            "cooperating_units": [],
            "territory": self.territory(),
            "urgency": self.urgency,
            "reopen_count": self.reopen_count,
        } | extra
        return CloudEvent(type=event_type, source="/jiesu/dispatch", subject=self.case_id, time=at, data=data)

    def judged(self, at: datetime, decision: str = "dispatch") -> CloudEvent:
        return self.event(topics.CASE_JUDGED, at, "judged", decision=decision, reasons=[])

    def dispatched(self, at: datetime, *, redispatched: bool = False) -> CloudEvent:
        return self.event(topics.CASE_DISPATCHED, at, "dispatched", redispatched=redispatched)

    def signed(self, at: datetime, *, on_time: bool = True) -> CloudEvent:
        return self.event(topics.CASE_SIGNED, at, "signed", unit_code=self.unit, on_time=on_time)

    def completed(self, at: datetime, *, on_time: bool = True) -> CloudEvent:
        return self.event(topics.CASE_COMPLETED, at, "completed", unit_code=self.unit, on_time=on_time)

    def returned(self, at: datetime, reason: str = "不属于本单位职责") -> CloudEvent:
        return self.event(topics.CASE_RETURNED, at, "returned", unit_code=self.unit, reason=reason)

    def reopened(self, at: datetime) -> CloudEvent:
        self.reopen_count += 1
        return self.event(topics.CASE_REOPENED, at, "reopened")

    def report(
        self, at: datetime, *, address: str | None = None, lat: float | None = None, lon: float | None = None
    ) -> CloudEvent:
        """Intake's ``report.received`` for this case."""
        data = {
            "id": self.case_id,
            "case_number": self.number,
            "source": self.source,
            "content": "…",
            "address": address,
            "location": {"lat": lat, "lon": lon} if lat is not None else None,
            "reporter": {"name": "张三", "phone": "13800000000"},
            "received_at": at.isoformat(),
        }
        return CloudEvent(type=topics.REPORT_RECEIVED, source="/jiesu/intake", subject=self.case_id, time=at, data=data)

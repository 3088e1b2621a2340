"""Migration 0004 seals the reporters stored before it, rekeys their fingerprints and cleans the outbox."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from services.intake.app import MIGRATIONS, create_app
from services.intake.schemas import ReportCreate
from services.intake.settings import IntakeSettings
from shared.db import create_engine
from shared.migrate import upgrade, upgrade_async
from tests.helpers import running

PHONE = "13957246813"
# A report as a sender posted it before ID numbers existed.
SENT: dict[str, Any] = {
    "source": "hotline",
    "external_id": "legacy-1",
    "content": "幸福路的路灯坏了三天了",
    "reporter": {"name": "欧阳娜娜", "phone": PHONE},
}
LEGACY = sa.table(
    "reports",
    *(sa.column(name) for name in ("id", "case_number", "source", "external_id", "fingerprint", "content")),
    *(sa.column(name) for name in ("received_at", "status", "status_at")),
    sa.column("reporter", sa.JSON),
    sa.column("requested_departments", sa.JSON),
    sa.column("attachments", sa.JSON),
)
OUTBOX = sa.table(
    "outbox",
    *(sa.column(name) for name in ("id", "aggregatetype", "aggregateid", "type", "topic", "source", "subject")),
    *(sa.column(name) for name in ("event_time", "payload", "created_at", "published_at")),
)


def legacy_fingerprint() -> str:
    """The plain digest the service stored before 0004."""
    sent = ReportCreate.model_validate(SENT).model_dump(mode="json")
    del sent["reporter"]["id_number"]
    return hashlib.sha256(json.dumps(sent, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


async def store_legacy_report(url: str) -> None:
    now = datetime.now(UTC)
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                sa.insert(LEGACY).values(
                    id="r-1",
                    case_number="JS202611260000001",
                    source="hotline",
                    external_id="legacy-1",
                    fingerprint=legacy_fingerprint(),
                    content=SENT["content"],
                    received_at=now,
                    status="received",
                    status_at=now,
                    reporter=SENT["reporter"],
                    requested_departments=[],
                    attachments=[],
                )
            )
            payload = {"id": "r-1", "case_number": "JS202611260000001", "reporter": SENT["reporter"]}
            await conn.execute(
                sa.insert(OUTBOX).values(
                    id="e-1",
                    aggregatetype="report",
                    aggregateid="r-1",
                    type="jiesu.intake.report.received.v1",
                    topic="jiesu.intake.reports",
                    source="/jiesu/intake",
                    subject="r-1",
                    event_time=now,
                    payload=json.dumps(payload, ensure_ascii=False).encode(),
                    created_at=now,
                    published_at=now,
                )
            )
    finally:
        await engine.dispose()


async def outbox_payload(url: str) -> dict[str, Any]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            payload = (await conn.execute(sa.text("select payload from outbox"))).scalar_one()
    finally:
        await engine.dispose()
    data: dict[str, Any] = json.loads(bytes(payload))
    return data


def raw_sqlite(path: Path) -> bytes:
    with sqlite3.connect(path) as db:
        db.execute("pragma wal_checkpoint(truncate)")
    return b"".join(p.read_bytes() for p in path.parent.glob(f"{path.name}*"))


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_reporters_stored_before_are_sealed_and_still_replay_and_reveal(
    backend: str, tmp_path: Path, pg_databases: Callable[[], Awaitable[str]]
) -> None:
    url = await pg_databases() if backend == "postgres" else f"sqlite+aiosqlite:///{tmp_path / 'intake.db'}"
    await asyncio.to_thread(upgrade, script_location=MIGRATIONS, database_url=url, revision="0003")
    await store_legacy_report(url)
    await upgrade_async(script_location=MIGRATIONS, database_url=url)

    assert (await outbox_payload(url))["reporter"]["phone_masked"] == "139****6813"
    assert PHONE not in json.dumps(await outbox_payload(url))
    if backend == "sqlite":
        assert PHONE.encode() not in await asyncio.to_thread(raw_sqlite, tmp_path / "intake.db")
    settings = IntakeSettings(database_url=url, embedded_bus_url=f"sqlite+aiosqlite:///{tmp_path / 'bus.db'}")
    async with running(create_app(settings.model_copy(update={"consumers": False}))) as intake:
        shown = (await intake.get("/v1/reports/r-1")).json()
        assert shown["reporter"] == {"name": "欧**娜", "phone": "139****6813", "id_number": None}
        revealed = (await intake.get("/v1/reports/r-1/reporter")).json()
        assert revealed["reporter"] == {"name": "欧阳娜娜", "phone": PHONE, "id_number": None}
        # The fingerprint was rekeyed, not lost: the sender's retry is still a replay, not a conflict.
        again = await intake.post("/v1/reports", json=SENT)
        assert again.headers.get("idempotent-replayed") == "true" and again.json()["id"] == "r-1"

"""A service is not ready until its database and the credential store hold the schema this release needs."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import httpx

from services.registry import SERVICES
from shared.auth import MIGRATIONS as AUTH_MIGRATIONS
from shared.auth import AuthSettings
from shared.migrate import revisions, upgrade, upgrade_async


async def readiness(tmp_path: Path, *, auth_migrated: bool = True) -> tuple[int, dict[str, object]]:
    spec = SERVICES["intake"]
    settings = spec.make_settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'intake.db'}",
        embedded_bus_url=f"sqlite+aiosqlite:///{tmp_path / 'bus.db'}",
    )
    auth = AuthSettings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'auth.db'}")
    if auth_migrated:
        await upgrade_async(script_location=AUTH_MIGRATIONS, database_url=auth.database_url)
    app = spec.create_app(settings, auth=auth)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            answer = await client.get("/readyz")
            return answer.status_code, answer.json()


def set_revision(database: Path, revision: str) -> None:
    with sqlite3.connect(database) as db:
        db.execute("UPDATE alembic_version SET version_num = ?", (revision,))


async def test_readiness_waits_for_the_migrations(tmp_path: Path) -> None:
    intake = SERVICES["intake"]
    url = f"sqlite+aiosqlite:///{tmp_path / 'intake.db'}"

    status, body = await readiness(tmp_path)
    assert status == 503 and body["status"] == "unavailable"
    assert body["checks"]["schema"] == "not migrated: run `jiesu migrate intake`"  # type: ignore[index]

    await asyncio.to_thread(upgrade, script_location=intake.migrations, database_url=url, revision="0003")
    head, _ = revisions(intake.migrations)
    status, body = await readiness(tmp_path)
    assert status == 503
    assert body["checks"]["schema"] == (  # type: ignore[index]
        f"at migration 0003, this release needs {head}: run `jiesu migrate intake`"
    )

    await upgrade_async(script_location=intake.migrations, database_url=url)
    status, body = await readiness(tmp_path)
    assert (status, body["status"], body["checks"]["schema"]) == (200, "ready", "ok")  # type: ignore[index]

    set_revision(tmp_path / "intake.db", "9999")  # migrated by a newer release: this one keeps serving
    status, body = await readiness(tmp_path)
    assert (status, body["status"]) == (200, "ready")


async def test_readiness_waits_for_the_credential_store(tmp_path: Path) -> None:
    await upgrade_async(
        script_location=SERVICES["intake"].migrations, database_url=f"sqlite+aiosqlite:///{tmp_path / 'intake.db'}"
    )
    status, body = await readiness(tmp_path, auth_migrated=False)
    assert status == 503
    assert body["checks"]["schema"] == "not migrated: run `jiesu migrate auth`"  # type: ignore[index]

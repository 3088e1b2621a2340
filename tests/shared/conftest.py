"""Fixtures of the shared-layer tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services.intake.app import MIGRATIONS
from shared.db import create_engine
from shared.migrate import upgrade_async


@pytest.fixture(params=["sqlite", "postgres"])
async def engine(
    request: pytest.FixtureRequest, pg_databases: Callable[[], Awaitable[str]], sqlite_url: str
) -> AsyncIterator[AsyncEngine]:
    """A service database with an outbox and an inbox (intake's), on SQLite and on PostgreSQL."""
    url = await pg_databases() if request.param == "postgres" else sqlite_url
    await upgrade_async(script_location=MIGRATIONS, database_url=url)
    db = create_engine(url)
    yield db
    await db.dispose()

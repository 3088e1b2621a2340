"""Fixtures of the dispatch tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services.dispatch.app import MIGRATIONS
from services.dispatch.context import DispatchContext
from services.dispatch.settings import DispatchSettings
from shared.db import create_engine, session_factory
from shared.guide import SEED_GUIDE
from shared.migrate import upgrade_async
from tests.services.dispatch.chunking import Databases, Session


@pytest.fixture(params=["sqlite", "postgresql"])
async def databases(
    request: pytest.FixtureRequest, tmp_path: Path, pg_databases: Callable[[], Awaitable[str]]
) -> AsyncIterator[Databases]:
    """Fresh migrated dispatch databases of the dialect (with the seed guide), as many as the test asks for."""
    engines: list[AsyncEngine] = []

    async def make() -> Session:
        if request.param == "sqlite":
            url = f"sqlite+aiosqlite:///{tmp_path / f'dispatch{len(engines)}.db'}"
        else:
            url = await pg_databases()
        await upgrade_async(script_location=MIGRATIONS, database_url=url)
        engine = create_engine(url)
        engines.append(engine)
        return DispatchContext.load(DispatchSettings(database_url=url, guide_path=SEED_GUIDE)), session_factory(engine)

    yield make
    for engine in engines:
        await engine.dispose()

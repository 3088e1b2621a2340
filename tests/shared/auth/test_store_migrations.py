"""The credential store's migrations build its schema from empty, on PostgreSQL and SQLite, matching its models."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from shared.auth import MIGRATIONS
from shared.auth.models import Base
from shared.db import create_engine
from shared.migrate import upgrade_async


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_the_store_migrates_from_empty_to_its_models(
    backend: str, pg_databases: Callable[[], Awaitable[str]], sqlite_url: str
) -> None:
    url = await pg_databases() if backend == "postgres" else sqlite_url
    await upgrade_async(script_location=MIGRATIONS, database_url=url)
    await upgrade_async(script_location=MIGRATIONS, database_url=url)  # a second run is a no-op

    def drift(conn: Connection) -> list[Any]:
        return list(compare_metadata(MigrationContext.configure(conn, opts={"compare_type": False}), Base.metadata))

    def tables(conn: Connection) -> set[str]:
        return set(inspect(conn).get_table_names())

    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            assert await conn.run_sync(drift) == []
            assert await conn.run_sync(tables) == {"api_keys", "audit_log", "alembic_version"}
    finally:
        await engine.dispose()

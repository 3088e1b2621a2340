"""Every service's migrations build its schema from empty, on PostgreSQL and SQLite, matching its models."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib import import_module
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from services.registry import SERVICES
from shared.db import create_engine
from shared.migrate import upgrade_async


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
@pytest.mark.parametrize("service", list(SERVICES))
async def test_migrations_from_empty_match_the_models(
    service: str, backend: str, pg_databases: Callable[[], Awaitable[str]], sqlite_url: str
) -> None:
    url = await pg_databases() if backend == "postgres" else sqlite_url
    await upgrade_async(script_location=SERVICES[service].migrations, database_url=url)
    await upgrade_async(script_location=SERVICES[service].migrations, database_url=url)  # a second run is a no-op
    metadata = import_module(f"services.{service}.models").Base.metadata

    def drift(conn: Connection) -> list[Any]:
        context = MigrationContext.configure(conn, opts={"compare_type": False})
        return list(compare_metadata(context, metadata))

    def tables(conn: Connection) -> set[str]:
        return set(inspect(conn).get_table_names())

    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            assert await conn.run_sync(drift) == []
            assert {"outbox", "inbox", "alembic_version"} | set(metadata.tables) == await conn.run_sync(tables)
    finally:
        await engine.dispose()

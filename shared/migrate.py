"""Alembic plumbing: each service keeps its own migrations; this runs them against its database."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import MetaData
from sqlalchemy.engine import Connection

from shared.db import create_engine


def alembic_config(*, script_location: Path, database_url: str) -> Config:
    """An Alembic config for one service, without an ini file."""
    config = Config()
    config.set_main_option("script_location", str(script_location))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(*, script_location: Path, database_url: str, revision: str = "head") -> None:
    """Apply migrations up to ``revision`` (blocking; call from a thread inside an event loop)."""
    command.upgrade(alembic_config(script_location=script_location, database_url=database_url), revision)


async def upgrade_async(*, script_location: Path, database_url: str) -> None:
    """Apply migrations to head without blocking the event loop."""
    await asyncio.to_thread(upgrade, script_location=script_location, database_url=database_url)


def run_env(target_metadata: MetaData) -> None:
    """Body of a service's ``migrations/env.py``: migrate online with the async engine."""
    from alembic import context

    url = context.config.get_main_option("sqlalchemy.url")
    assert url is not None, "sqlalchemy.url must be set"

    def migrate(connection: Connection) -> None:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()

    async def run() -> None:
        engine = create_engine(url, pooled=False)
        async with engine.connect() as connection:
            await connection.run_sync(migrate)
            await connection.commit()
        await engine.dispose()

    if context.is_offline_mode():
        context.configure(url=url, target_metadata=target_metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
    else:
        asyncio.run(run())

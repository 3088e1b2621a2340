"""Alembic plumbing: each service keeps its own migrations; this runs them against its database."""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db import create_engine, reading


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


@functools.cache
def revisions(script_location: Path) -> tuple[str, frozenset[str]]:
    """The newest revision of a migrations folder and every revision it holds."""
    script = ScriptDirectory.from_config(alembic_config(script_location=script_location, database_url="sqlite://"))
    head = script.get_current_head()
    assert head is not None, f"{script_location} has no migrations"
    return head, frozenset(revision.revision for revision in script.walk_revisions())


class SchemaCheck:
    """Whether a database holds the schema this release needs; once it does, that is remembered.

    A database at a revision this release does not know was migrated by a newer release: it counts as ready, so
    pods of the release before keep serving while a rolling update replaces them (migrations add; they do not take
    away what the release before still reads).
    """

    def __init__(self, engine: AsyncEngine, script_location: Path, *, command: str) -> None:
        self.engine = engine
        self.script_location = script_location
        self.command = command
        self._ready = False

    async def problem(self) -> str | None:
        """None when the schema will do; else what is wrong and what to run."""
        if self._ready:
            return None
        head, known = revisions(self.script_location)
        try:
            async with reading(self.engine) as conn:
                current = set((await conn.execute(text("SELECT version_num FROM alembic_version"))).scalars())
        except DBAPIError:
            current = set()  # no alembic_version table: never migrated
        if not current:
            return f"not migrated: run `{self.command}`"
        if head in current or not current <= known:
            self._ready = True
            return None
        return f"at migration {', '.join(sorted(current))}, this release needs {head}: run `{self.command}`"


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

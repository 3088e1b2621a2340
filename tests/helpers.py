"""Small helpers the tests share: running an app in-process, waiting for something to happen, query plans."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
from fastapi import FastAPI
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.auth import MIGRATIONS as AUTH_MIGRATIONS
from shared.auth import AuthRuntime, AuthSettings, Role
from shared.auth.models import ApiKey
from shared.auth.settings import DEFAULT_DATABASE_URL
from shared.auth.store import check_scope, digest, split_key
from shared.db import create_engine, session_factory
from shared.events import utcnow
from shared.migrate import upgrade_async

T = TypeVar("T")
# Test clients must never be slowed by the rate limit; the limit itself is tested on its own.
UNLIMITED = 1_000_000.0


async def credential(
    app: FastAPI,
    role: Role = "admin",
    *,
    units: list[str] | None = None,
    grids: list[str] | None = None,
    streets: list[str] | None = None,
    expires_at: datetime | None = None,
    rate_per_second: float | None = UNLIMITED,
) -> dict[str, str]:
    """Headers carrying a fresh API key of a role in a running app's credential store."""
    _, key = await auth_of_app(app).store.create(
        role=role,
        name=f"test {role}",
        units=units,
        grids=grids,
        streets=streets,
        expires_at=expires_at,
        rate_per_second=rate_per_second,
    )
    return {"Authorization": f"Bearer {key}"}


def auth_of_app(app: FastAPI) -> AuthRuntime:
    """The auth runtime of a started app."""
    runtime: AuthRuntime = app.state.auth
    return runtime


async def provision_key(database_url: str, *, key: str, role: Role, name: str = "test key") -> None:
    """Migrate a credential store and put a known API key (``jsk_<id>_<secret>``) in it, unlimited in rate."""
    parts = split_key(key)
    assert parts is not None, "a test key has the shape jsk_<id>_<secret>"
    await upgrade_async(script_location=AUTH_MIGRATIONS, database_url=database_url)
    engine = create_engine(database_url)
    try:
        async with session_factory(engine)() as session, session.begin():
            if await session.get(ApiKey, parts[0]) is None:
                check_scope(role, units=[], grids=[], streets=[])
                session.add(
                    ApiKey(
                        id=parts[0],
                        name=name,
                        role=role,
                        units=[],
                        grids=[],
                        streets=[],
                        secret_sha256=digest(parts[1]),
                        rate_per_second=UNLIMITED,
                        created_at=utcnow(),
                    )
                )
    finally:
        await engine.dispose()


@asynccontextmanager
async def running(app: FastAPI, *, role: Role | None = "admin") -> AsyncIterator[httpx.AsyncClient]:
    """Run an app's lifespan (database, bus, consumers, relay) and give a client with a key of ``role``.

    An app left on the default credential store gets its own, in a temporary folder.
    """
    with tempfile.TemporaryDirectory(prefix="jiesu-auth-") as folder:
        settings: AuthSettings = app.state.auth_settings
        if settings.database_url == DEFAULT_DATABASE_URL:
            settings = settings.model_copy(update={"database_url": f"sqlite+aiosqlite:///{folder}/auth.db"})
            app.state.auth_settings = settings
        await upgrade_async(script_location=AUTH_MIGRATIONS, database_url=settings.database_url)
        async with app.router.lifespan_context(app):
            headers = await credential(app, role) if role is not None else {}
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test", headers=headers) as client:
                yield client


async def eventually(probe: Callable[[], Awaitable[T | None]], *, timeout: float = 20.0, what: str = "condition") -> T:
    """Poll until the probe returns something truthy; fail with what was awaited."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: T | None = None
    while loop.time() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last seen: {last!r}")


async def sqlite_plans(engine: AsyncEngine, table: str, run: Callable[[], Awaitable[object]]) -> list[list[str]]:
    """SQLite's `EXPLAIN QUERY PLAN` steps for every SELECT from ``table`` that ``run`` makes, in order."""
    statements: list[tuple[str, Any]] = []

    def seen(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and f"FROM {table}" in statement:
            statements.append((statement, parameters))

    event.listen(engine.sync_engine, "before_cursor_execute", seen)
    try:
        await run()
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", seen)
    plans = []
    async with engine.connect() as connection:
        for statement, parameters in statements:
            found = await connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
            plans.append([str(row[-1]) for row in found.all()])
    return plans


async def migrated_engine(
    kind: str, folder: Path, pg_databases: Callable[[], Awaitable[str]], migrations: Path
) -> AsyncEngine:
    """An engine on a fresh service database, "sqlite" (a file in ``folder``) or "postgresql", at its newest schema."""
    url = f"sqlite+aiosqlite:///{folder / 'service.db'}" if kind == "sqlite" else await pg_databases()
    await upgrade_async(script_location=migrations, database_url=url)
    return create_engine(url)

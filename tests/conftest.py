"""Fixtures for the real servers: PostgreSQL and Kafka, as started by scripts/postgres.sh and scripts/kafka.sh."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

HINT = "start it with `make services-up` (or run `make test`, which does)"


def _required(variable: str, what: str) -> str:
    value = os.environ.get(variable)
    if not value:
        # A missing server is a failure, never a skip: these tests are about the real thing.
        pytest.fail(f"{what} is not available: {variable} is unset; {HINT}", pytrace=False)
    return value


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    """URL of the PostgreSQL server the tests may create databases in."""
    return _required("JIESU_TEST_PG_URL", "PostgreSQL")


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """Bootstrap servers of the real Kafka broker."""
    return _required("JIESU_TEST_KAFKA", "Kafka")


def _asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture
async def pg_databases(pg_admin_url: str) -> AsyncIterator[Callable[[], Awaitable[str]]]:
    """Make fresh, empty PostgreSQL databases for one test; all are dropped afterwards."""
    made: list[str] = []

    async def make() -> str:
        name = f"jiesu_t_{uuid.uuid4().hex[:12]}"
        admin = await asyncpg.connect(_asyncpg_dsn(pg_admin_url))
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        made.append(name)
        return make_url(pg_admin_url).set(database=name).render_as_string(hide_password=False)

    yield make
    admin = await asyncpg.connect(_asyncpg_dsn(pg_admin_url))
    try:
        for name in made:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def pg_url(pg_databases: Callable[[], Awaitable[str]]) -> str:
    """A fresh, empty PostgreSQL database for one test."""
    return await pg_databases()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite database file for one test."""
    return f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"


@pytest.fixture
def namespace() -> str:
    """A topic and consumer-group prefix unique to one test."""
    return f"t{uuid.uuid4().hex[:10]}."

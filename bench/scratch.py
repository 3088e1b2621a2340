"""Throw-away databases for the in-process benches: a SQLite file in a folder, or a fresh PostgreSQL database."""

from __future__ import annotations

import uuid
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url


async def _admin(base: str) -> asyncpg.Connection:
    url = make_url(base)
    return await asyncpg.connect(
        host=url.host, port=url.port, user=url.username, password=url.password, database=url.database
    )


async def scratch_database(base: str | None, name: str, folder: Path, *, prefix: str) -> str:
    """A new, empty database named after ``name``: a SQLite file in ``folder``, or one beside ``base`` (PostgreSQL)."""
    if base is None:
        return f"sqlite+aiosqlite:///{folder / f'{name}.db'}"
    database = f"{prefix}_{name}_{uuid.uuid4().hex[:8]}"
    admin = await _admin(base)
    try:
        await admin.execute(f'CREATE DATABASE "{database}"')
    finally:
        await admin.close()
    return make_url(base).set(database=database).render_as_string(hide_password=False)


async def drop_databases(base: str, urls: list[str]) -> None:
    """Drop the PostgreSQL databases of these URLs (made by ``scratch_database``)."""
    admin = await _admin(base)
    try:
        for url in urls:
            await admin.execute(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')
    finally:
        await admin.close()

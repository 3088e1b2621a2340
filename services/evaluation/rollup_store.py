"""Adding to roll-up rows: one upsert statement per change (per consumer chunk), in the caller's transaction.

On PostgreSQL a consumer chunk's upsert is a part of the chunk's one writing statement (``WriteBuffer.parts``).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Dialect
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from services.evaluation.models import rollups
from services.evaluation.rollup import ALL_COLUMNS, RowKey
from shared.db import ArrayPart, insert_part, write_buffer


async def bump(session: AsyncSession, keys: Iterable[RowKey], increments: Mapping[str, float]) -> None:
    """Add the same increments to each row, creating rows on first use."""
    await bump_many(session, {key: increments for key in keys})


async def bump_many(session: AsyncSession, changes: Mapping[RowKey, Mapping[str, float]]) -> None:
    """Add increments to rows; inside a consumer chunk they are summed and written once at the chunk's end."""
    unknown = {name for inc in changes.values() for name in inc if name not in _KNOWN}
    if unknown:
        raise ValueError(f"unknown roll-up counters {sorted(unknown)}")
    buffer = write_buffer(session)
    if buffer is None:
        await _upsert(session, changes)
        return
    _, pending = buffer.merges.setdefault(_MERGE, (_upsert, {}))
    buffer.parts[_MERGE] = _upsert_parts
    for key, increments in changes.items():
        row = pending.setdefault(key, {})
        for name, value in increments.items():
            if value:
                row[name] = row.get(name, 0) + value


_MERGE = "evaluation.rollups"
_KNOWN = frozenset(ALL_COLUMNS)
_KEY_COLUMNS = RowKey._fields
_CONFLICT = ("span", "level", "period_start", "code", "kind_code")  # the rows' unique key (category_code follows)


def _rows(changes: Mapping[RowKey, Mapping[str, float]]) -> tuple[tuple[str, ...], list[dict[str, Any]]]:
    """The counters changed and a row per key that changes, in key order so concurrent writers never deadlock."""
    names = tuple(sorted({name for inc in changes.values() for name, value in inc.items() if value}))
    values: list[dict[str, Any]] = []
    for key in sorted(changes):
        increments = changes[key]
        if any(increments.get(name) for name in names):
            values.append(dict(zip(_KEY_COLUMNS, key, strict=True)) | {name: increments.get(name, 0) for name in names})
    return names, values


async def _upsert(session: AsyncSession, changes: Mapping[RowKey, Mapping[str, float]]) -> None:
    """One upsert for all rows."""
    names, values = _rows(changes)
    if not values:
        return
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    await (await session.connection()).execute(_upsert_statement(dialect, names), values)


def _upsert_parts(dialect: Dialect, changes: Mapping[RowKey, Mapping[str, float]]) -> list[ArrayPart] | None:
    """PostgreSQL: the same upsert as a part of the chunk's one statement."""
    names, values = _rows(changes)
    if not values:
        return []
    part = insert_part(rollups, values, dialect, adding=(_CONFLICT, names))
    return None if part is None else [part]


@functools.cache
def _upsert_statement(dialect: str, names: tuple[str, ...]) -> Any:
    """The upsert adding these counters, built once per set of counters.

    One statement executed for many rows: compiled once and cached, where a statement of many VALUES rows would be
    compiled anew for every chunk; and built once, as building it (its ``excluded`` columns) costs as much again.
    """
    insert = postgresql.insert(rollups) if dialect == "postgresql" else sqlite.insert(rollups)
    return insert.on_conflict_do_update(
        index_elements=list(_CONFLICT),
        set_={name: rollups.c[name] + insert.excluded[name] for name in names},
    )

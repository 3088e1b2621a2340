"""Adding to roll-up rows: one upsert statement per change, atomic per row, in the caller's transaction."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from services.evaluation.models import rollups
from services.evaluation.rollup import ALL_COLUMNS, RowKey


async def bump(session: AsyncSession, keys: Iterable[RowKey], increments: Mapping[str, float]) -> None:
    """Add the same increments to each row, creating rows on first use."""
    await bump_many(session, {key: increments for key in keys})


async def bump_many(session: AsyncSession, changes: Mapping[RowKey, Mapping[str, float]]) -> None:
    """Add increments to rows; rows are written in key order so concurrent writers never deadlock."""
    names = sorted({name for inc in changes.values() for name, value in inc.items() if value})
    unknown = set(names) - set(ALL_COLUMNS)
    if unknown:
        raise ValueError(f"unknown roll-up counters {sorted(unknown)}")
    if not names:
        return
    values: list[dict[str, Any]] = [
        {
            "span": key.span,
            "level": key.level,
            "period_start": key.period_start,
            "code": key.code,
            "kind_code": key.kind_code,
            "category_code": key.category_code,
            **{name: changes[key].get(name, 0) for name in names},
        }
        for key in sorted(changes)
        if any(changes[key].get(name) for name in names)
    ]
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    insert = postgresql.insert(rollups) if dialect == "postgresql" else sqlite.insert(rollups)
    statement = insert.values(values).on_conflict_do_update(
        index_elements=["span", "level", "period_start", "code", "kind_code"],
        set_={name: rollups.c[name] + insert.excluded[name] for name in names},
    )
    await session.execute(statement)

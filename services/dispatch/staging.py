"""New cases of a consumer chunk written as rows of its buffer (开单): one insert for the chunk, no ORM bookkeeping.

A case the chunk opens is only ever inserted, so it is not added to the session: its row joins the chunk's write
buffer ahead of the trail, task and timer rows that refer to it, and is filled from the case once its report is
judged, and again whenever a later report of the chunk merges into it. Nothing flushes the buffer while a chunk
judges its reports (a fresh case has no tasks or timers to look up), so the row holds the case's final state.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache, partial
from typing import Any, cast

from sqlalchemy import JSON, ColumnDefault, Table, null
from sqlalchemy.ext.asyncio import AsyncSession

from services.dispatch.models import Case
from shared.db import write_buffer

_STAGED = "dispatch.staged_cases"  # case id -> the case's row in the chunk's buffer
_CASES = cast(Table, Case.__table__)


@cache
def _case_columns() -> list[tuple[str, Callable[[Any], Any] | None, bool]]:
    """Each column of cases: its key, its Python default (called with no context) and whether it holds JSON."""
    columns = []
    for column in _CASES.columns:
        default: Callable[[Any], Any] | None = None
        if isinstance(column.default, ColumnDefault) and column.default.is_callable:
            default = column.default.arg
        elif isinstance(column.default, ColumnDefault) and column.default.is_scalar:
            default = partial(lambda value, _context: value, column.default.arg)
        elif column.default is not None:  # pragma: no cover - a SQL expression default is the database's to compute
            raise TypeError(f"cases.{column.key}: a SQL default cannot be written as a plain row")
        columns.append((column.key, default, isinstance(column.type, JSON)))
    return columns


def _case_row(case: Case) -> dict[str, Any]:
    """The row the ORM would insert for a new case: what was set, else the column's default, else NULL."""
    state = case.__dict__  # the ORM keeps the attributes set on an instance here, and only those
    row: dict[str, Any] = {}
    for key, default, json_type in _case_columns():
        value = state.get(key)
        if value is None and (json_type is False or key not in state):
            # The ORM leaves out a None it would not store as JSON null, and what was never set: default or NULL.
            value = default(None) if default is not None else (null() if json_type else None)
        row[key] = value
    return row


def stage(session: AsyncSession, case: Case) -> bool:
    """Queue a new case's row in the chunk's buffer, first of its tables; False when the ORM must insert it."""
    buffer = write_buffer(session)
    if buffer is None or (buffer.inserts and next(iter(buffer.inserts)) is not _CASES):
        return False
    row: dict[str, Any] = {}  # filled once the report is judged; written empty, it would fail loudly
    buffer.add(_CASES, [row])
    session.info.setdefault(_STAGED, {})[case.id] = row
    return True


def restage(session: AsyncSession, case: Case) -> None:
    """Bring a staged case's row up to date (nothing flushes the buffer while a chunk judges its reports)."""
    rows: dict[str, dict[str, Any]] = session.info.get(_STAGED) or {}
    row = rows.get(case.id)
    if row is not None:
        row.update(_case_row(case))

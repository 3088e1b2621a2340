"""The case trail (留痕记录): append-only entries chained by hash, and its verification."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.dispatch.models import Case, CaseEntry
from shared.db import write_buffer

GENESIS = "0" * 64


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def entry_hash(
    *,
    prev_hash: str,
    case_id: str,
    at: datetime,
    actor: str,
    action: str,
    from_status: str | None,
    to_status: str,
    detail: dict[str, Any],
) -> str:
    """SHA-256 over the previous hash and the canonical JSON of the entry."""
    canonical = json.dumps(
        {
            "prev": prev_hash,
            "case": case_id,
            "at": _iso(at),
            "actor": actor,
            "action": action,
            "from": from_status,
            "to": to_status,
            "detail": detail,
        },
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


async def append(
    session: AsyncSession,
    *,
    case: Case,
    at: datetime,
    actor: str,
    action: str,
    from_status: str | None,
    to_status: str,
    detail: dict[str, Any] | None = None,
) -> CaseEntry:
    """Append an entry to a case's trail (the caller holds the case's lock); the case keeps the chain's head.

    Inside a consumer chunk the entry joins the chunk's buffer: one insert for all entries, in append order.
    """
    case_id = case.id
    prev = case.trail_head
    if prev is None:  # a case from before the head was kept: find it once
        last = (
            await session.execute(
                select(CaseEntry.hash).where(CaseEntry.case_id == case_id).order_by(CaseEntry.seq.desc()).limit(1)
            )
        ).scalar_one_or_none()
        prev = last or GENESIS
    clean = json.loads(json.dumps(detail or {}, ensure_ascii=False, default=str))
    entry = CaseEntry(
        case_id=case_id,
        at=at,
        actor=actor,
        action=action,
        from_status=from_status,
        to_status=to_status,
        detail=clean,
        prev_hash=prev,
        hash=entry_hash(
            prev_hash=prev,
            case_id=case_id,
            at=at,
            actor=actor,
            action=action,
            from_status=from_status,
            to_status=to_status,
            detail=clean,
        ),
    )
    buffer = write_buffer(session)
    if buffer is None:
        session.add(entry)
    else:
        table = CaseEntry.__table__
        assert isinstance(table, Table)
        buffer.add(table, [{column: getattr(entry, column) for column in _COLUMNS}])
    case.trail_head = entry.hash
    return entry


_COLUMNS = ("case_id", "at", "actor", "action", "from_status", "to_status", "detail", "prev_hash", "hash")


def verify(entries: Sequence[CaseEntry]) -> tuple[bool, int | None]:
    """Whether the chain is intact; if not, the seq of the first entry that does not verify."""
    prev = GENESIS
    for entry in entries:
        expected = entry_hash(
            prev_hash=prev,
            case_id=entry.case_id,
            at=entry.at,
            actor=entry.actor,
            action=entry.action,
            from_status=entry.from_status,
            to_status=entry.to_status,
            detail=entry.detail,
        )
        if entry.prev_hash != prev or entry.hash != expected:
            return False, entry.seq
        prev = entry.hash
    return True, None


async def entries_of(session: AsyncSession, case_id: str) -> list[CaseEntry]:
    """A case's trail in order."""
    rows = await session.execute(select(CaseEntry).where(CaseEntry.case_id == case_id).order_by(CaseEntry.seq))
    return list(rows.scalars())

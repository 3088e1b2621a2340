"""The case trail (留痕记录): append-only entries chained by hash, and its verification."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, cast

from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.dispatch.models import Case, CaseEntry
from shared.db import write_buffer

GENESIS = "0" * 64


@lru_cache(maxsize=256)  # the entries of one change share their time
def _iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# The canonical form of an entry: what ``json.dumps`` with these options writes, one encoder for every entry.
_CANONICAL = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
_JSON = json.JSONEncoder(ensure_ascii=False, default=str)


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
    canonical = _CANONICAL.encode(
        {
            "prev": prev_hash,
            "case": case_id,
            "at": _iso(at),
            "actor": actor,
            "action": action,
            "from": from_status,
            "to": to_status,
            "detail": detail,
        }
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


class _NotPlain(Exception):
    """A value JSON would change (a tuple, a date, a non-string key...)."""


def _copy_plain(value: Any) -> Any:
    """A deep copy of a value made of JSON's own types, which a JSON round trip returns unchanged."""
    kind = type(value)
    if kind is str or kind is int or kind is float or kind is bool or value is None:
        return value
    if kind is dict:
        copy = {}
        for key, item in value.items():
            if type(key) is not str:
                raise _NotPlain
            copy[key] = _copy_plain(item)
        return copy
    if kind is list:
        return [_copy_plain(item) for item in value]
    raise _NotPlain


def clean_detail(detail: dict[str, Any] | None) -> dict[str, Any]:
    """The detail as stored and hashed: what a JSON round trip makes of it (dates as text, tuples as lists)."""
    if not detail:
        return {}
    try:
        copy: dict[str, Any] = _copy_plain(detail)
    except _NotPlain:
        copy = json.loads(_JSON.encode(detail))
    return copy


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
) -> str:
    """Append an entry to a case's trail (the caller holds the case's lock); the case keeps the chain's head.

    Returns the entry's hash. Inside a consumer chunk the entry joins the chunk's buffer: one insert for all
    entries, in append order.
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
    clean = clean_detail(detail)
    digest = entry_hash(
        prev_hash=prev,
        case_id=case_id,
        at=at,
        actor=actor,
        action=action,
        from_status=from_status,
        to_status=to_status,
        detail=clean,
    )
    row = {
        "case_id": case_id,
        "at": at,
        "actor": actor,
        "action": action,
        "from_status": from_status,
        "to_status": to_status,
        "detail": clean,
        "prev_hash": prev,
        "hash": digest,
    }
    buffer = write_buffer(session)
    if buffer is None:
        session.add(CaseEntry(**row))
    else:  # the row only, without building an ORM object that is never read
        buffer.add(_TRAIL, [row])
    case.trail_head = digest
    return digest


_TRAIL = cast(Table, CaseEntry.__table__)


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

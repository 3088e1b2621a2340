"""What a consumer chunk reads up front: its cases and report places in two queries, locked in one order.

Without it each event looked its case up (and locked it) on its own, a few statements per event. With it the
handlers find the chunk's cases and places in the session and write them back in one flush at the chunk's end.
Outside a consumer chunk (the API, a test calling a handler) nothing is cached and every look-up goes to the database.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import ARRAY, Text, bindparam, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from services.evaluation.models import EvaluatedCase, ReportPlace
from shared.events import CloudEvent

_KEY = "evaluation.chunk"

# One advisory lock per case, taken in key order so two consumers of the same cases never wait on each other in a
# cycle; the sorted subquery fixes the order the outer query takes them in.
_LOCK_MANY = text(
    "SELECT count(pg_advisory_xact_lock(k)) FROM "
    "(SELECT hashtext(x) AS k FROM unnest(:keys) AS x ORDER BY 1) AS ordered"
).bindparams(bindparam("keys", type_=ARRAY(Text)))


@dataclass(slots=True)
class Chunk:
    """The cases and places of one chunk: present, or known to be absent (None)."""

    cases: dict[str, EvaluatedCase | None] = field(default_factory=dict)
    places: dict[str, ReportPlace | None] = field(default_factory=dict)
    serialised: set[str] = field(default_factory=set)


def of(session: AsyncSession) -> Chunk | None:
    """The session's chunk, when a consumer prepared one."""
    chunk = session.info.get(_KEY)
    return chunk if isinstance(chunk, Chunk) else None


def case_id_of(event: CloudEvent) -> str | None:
    """The case an event is about (a received report's id is its case's id)."""
    value = event.data.get("case_id") or event.data.get("id")
    return str(value) if value else None


async def serialise_many(session: AsyncSession, case_ids: Sequence[str]) -> None:
    """Make the case and report consumers take turns on these cases (PostgreSQL; SQLite has one writer anyway)."""
    if case_ids and session.bind is not None and session.bind.dialect.name == "postgresql":
        await session.execute(_LOCK_MANY, {"keys": [f"spot:{case_id}" for case_id in case_ids]})


async def prepare(session: AsyncSession, events: Sequence[CloudEvent]) -> None:
    """Lock and load the chunk's cases and report places, two queries for the whole chunk."""
    ids = sorted({case_id for event in events if (case_id := case_id_of(event)) is not None})
    chunk = Chunk()
    session.info[_KEY] = chunk
    if not ids:
        return
    await serialise_many(session, ids)
    chunk.serialised.update(ids)
    cases = (
        await session.execute(
            select(EvaluatedCase)
            .where(EvaluatedCase.case_id.in_(ids))
            .order_by(EvaluatedCase.case_id)
            .with_for_update()
        )
    ).scalars()
    places = (await session.execute(select(ReportPlace).where(ReportPlace.case_id.in_(ids)))).scalars()
    chunk.cases = dict.fromkeys(ids) | {case.case_id: case for case in cases}
    chunk.places = dict.fromkeys(ids) | {place.case_id: place for place in places}


def remember_case(session: AsyncSession, case: EvaluatedCase) -> None:
    """A case added in this chunk: later events of the chunk find it."""
    chunk = of(session)
    if chunk is not None:
        chunk.cases[case.case_id] = case


def remember_place(session: AsyncSession, place: ReportPlace) -> None:
    """A place added in this chunk: later events of the chunk find it."""
    chunk = of(session)
    if chunk is not None:
        chunk.places[place.case_id] = place


async def place(session: AsyncSession, case_id: str) -> ReportPlace | None:
    """Where the case's report was made, from the chunk when it holds it."""
    chunk = of(session)
    if chunk is not None and case_id in chunk.places:
        return chunk.places[case_id]
    return await session.get(ReportPlace, case_id)

"""Following cases (评): evaluation's view of each case from dispatch's events, and the roll-ups they feed.

Every counter a case adds is written twice in one transaction: on the case's assignment (what it contributed)
and on the roll-up rows of its unit and territory (what queries sum). Nothing is recounted later.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.evaluation import chunk, rollup_store, spots
from services.evaluation.chunk import Case
from services.evaluation.models import CaseReroute, EvaluatedCase, Feedback
from services.evaluation.rollup import bucket_of, keys_for, unit_keys
from shared.problems import NotFound


def territory_of(case: Case) -> dict[str, str | None]:
    """The case's street, community and grid codes."""
    return {"street": case.street_code, "community": case.community_code, "grid": case.grid_code}


def current(case: Case) -> dict[str, Any] | None:
    """The assignment the case is in now (the last dispatch)."""
    return case.assignments[-1] if case.assignments else None


def _copied(assignments: list[dict[str, Any]], index: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """A new list whose assignment ``index`` (and its counters) is a copy: the old value stays as it was read.

    Assignments hold strings, numbers and their ``counters`` dict, so copying that one entry is a deep copy of
    all that changes; the ORM sees a new value, and a chunk compares it with the one it read.
    """
    copied = list(assignments)
    assignment = copied[index] = {**assignments[index], "counters": dict(assignments[index]["counters"])}
    return copied, assignment


async def add(session: AsyncSession, case: Case, index: int, **increments: float) -> None:
    """Add to one assignment's counters and to the roll-up rows of that assignment."""
    assignments, assignment = _copied(case.assignments, index)
    counters: dict[str, float] = assignment["counters"]
    for name, amount in increments.items():
        counters[name] = counters.get(name, 0) + amount
    case.assignments = assignments
    keys = keys_for(
        unit=assignment["unit"],
        kind=assignment["kind"],
        category=assignment["category"],
        day=date.fromisoformat(assignment["day"]),
        territory=territory_of(case),
    )
    await rollup_store.bump(session, keys, increments)


def _set(case: Case, index: int, **fields: Any) -> None:
    assignments, assignment = _copied(case.assignments, index)
    assignment.update(fields)
    case.assignments = assignments


async def lock(session: AsyncSession, case_id: str) -> EvaluatedCase | None:
    """A case, locked for change where the database can."""
    return (
        await session.execute(select(EvaluatedCase).where(EvaluatedCase.case_id == case_id).with_for_update())
    ).scalar_one_or_none()


async def held(session: AsyncSession, case_id: str) -> Case | None:
    """A case to change: the consumer chunk's row (locked up front), else the case locked now."""
    prepared = chunk.of(session)
    if prepared is not None and case_id in prepared.cases:
        return prepared.cases[case_id]
    return await lock(session, case_id)


async def on_judged(session: AsyncSession, data: dict[str, Any], at: datetime, *, tz: ZoneInfo, cell_m: float) -> None:
    """A judged case enters evaluation (for hot spots even before it is dispatched)."""
    await spots.serialise(session, data["case_id"])
    if await held(session, data["case_id"]) is not None:
        return
    territory = data.get("territory") or {}
    codes = territory.get("codes") or {}
    names = territory.get("names") or {}
    case = chunk.add_case(
        session,
        {
            "case_id": data["case_id"],
            "case_number": data["case_number"],
            "source": data["source"],
            "kind_code": data.get("kind_code"),
            "judged_kind_code": data.get("kind_code"),
            "category_code": data.get("category_code"),
            "street_code": codes.get("street"),
            "community_code": codes.get("community"),
            "grid_code": codes.get("grid"),
            "place_name": names.get("community") or names.get("street"),
            "urgency": data.get("urgency") or "normal",
            "status": data["status"],
            "judged_at": at,
            "round": 0,
            "assignments": [],
            "callback_attempts": 0,
            "caller_key": data.get("caller_key"),
        },
    )
    await spots.recount(session, case, tz=tz, cell_m=cell_m)


async def on_dispatched(
    session: AsyncSession, data: dict[str, Any], at: datetime, *, tz: ZoneInfo, cell_m: float
) -> None:
    """A case reached a unit: a new assignment, counted as dispatched for that unit on that day."""
    await spots.serialise(session, data["case_id"])
    case = await held(session, data["case_id"])
    if case is None:
        await on_judged(session, data, at, tz=tz, cell_m=cell_m)
        case = await held(session, data["case_id"])  # outside a chunk, the query flushes the new case first
        assert case is not None
    unit, kind = data["primary_unit"], data.get("kind_code")
    previous = current(case)
    if previous is not None:
        returned_by = previous.get("returned_by")
        if returned_by is not None and returned_by == unit:
            await add(session, case, len(case.assignments) - 1, returned_without_cause=1)
        if previous["unit"] != unit or previous["kind"] != kind:
            reason = "dispute" if case.status == "disputed" else "return" if returned_by else "rejudge"
            _reroute(session, case, at, reason=reason, previous=previous, unit=unit, kind=kind)
    elif case.judged_kind_code is not None and case.judged_kind_code != kind:
        _reroute(session, case, at, reason="triage", previous=None, unit=unit, kind=kind)
    day = at.astimezone(tz).date()
    case.assignments = [
        *case.assignments,
        {
            "unit": unit,
            "kind": kind,
            "category": data.get("category_code"),
            "day": day.isoformat(),
            "dispatched_at": at.isoformat(),
            "counters": {},
        },
    ]
    case.primary_unit = unit
    case.kind_code = kind
    case.category_code = data.get("category_code")
    case.urgency = data.get("urgency") or case.urgency
    case.status = data["status"]
    case.dispatched_at = at
    case.period_day = day
    case.signed_at = None
    case.completed_at = None
    case.overdue_counted = False
    case.caller_key = data.get("caller_key") or case.caller_key
    await add(session, case, len(case.assignments) - 1, dispatched=1)
    await spots.recount(session, case, tz=tz, cell_m=cell_m)


def _reroute(
    session: AsyncSession,
    case: Case,
    at: datetime,
    *,
    reason: str,
    previous: dict[str, Any] | None,
    unit: str,
    kind: str | None,
) -> None:
    session.add(
        CaseReroute(
            case_id=case.case_id,
            case_number=case.case_number,
            at=at,
            reason=reason,
            from_kind=previous["kind"] if previous else case.judged_kind_code,
            to_kind=kind,
            from_unit=previous["unit"] if previous else None,
            to_unit=unit,
            return_reason=previous.get("return_reason") if previous else None,
        )
    )


async def _assigned(session: AsyncSession, data: dict[str, Any]) -> tuple[Case, int] | None:
    case = await held(session, data["case_id"])
    if case is None or not case.assignments:
        return None
    case.status = data.get("status", case.status)
    return case, len(case.assignments) - 1


async def on_signed(session: AsyncSession, data: dict[str, Any], at: datetime) -> None:
    """签收: the first sign of an assignment counts towards the response rate."""
    found = await _assigned(session, data)
    if found is None:
        return
    case, index = found
    if not case.assignments[index]["counters"].get("signed"):
        case.signed_at = at
        await add(session, case, index, signed=1, signed_on_time=int(bool(data.get("on_time"))))


async def on_completed(session: AsyncSession, data: dict[str, Any], at: datetime) -> None:
    """办结: the case waits for the call-back; the first completion of an assignment measures handling time."""
    found = await _assigned(session, data)
    if found is None:
        return
    case, index = found
    case.status = "completed"
    case.completed_at = at
    assignment = case.assignments[index]
    if assignment["counters"].get("completed"):
        return
    hours = max(0.0, (at - datetime.fromisoformat(assignment["dispatched_at"])).total_seconds() / 3600)
    increments: dict[str, float] = {
        "completed": 1,
        "completed_on_time": int(bool(data.get("on_time"))),
        "handling_count": 1,
        "handling_hours_sum": round(hours, 4),
        bucket_of(hours): 1,
    }
    await add(session, case, index, **increments)


async def on_overdue(session: AsyncSession, data: dict[str, Any]) -> None:
    """A missed completion deadline counts against the assignment (once)."""
    found = await _assigned(session, data)
    if found is None or data.get("deadline") != "complete":
        return
    case, index = found
    if not case.assignments[index]["counters"].get("overdue"):
        case.overdue_counted = True
        await add(session, case, index, overdue=1)


async def on_returned(session: AsyncSession, data: dict[str, Any]) -> None:
    """退单: the unit gave the case back; whether it had cause shows when the case is dispatched again."""
    found = await _assigned(session, data)
    if found is None:
        return
    case, index = found
    _set(case, index, returned_by=data.get("unit_code"), return_reason=data.get("reason"))
    await add(session, case, index, returned=1)


async def on_extension_requested(session: AsyncSession, data: dict[str, Any]) -> None:
    """延期 asked."""
    found = await _assigned(session, data)
    if found is not None:
        await add(session, found[0], found[1], extension_requested=1)


async def on_extension_decided(session: AsyncSession, data: dict[str, Any]) -> None:
    """延期 granted (a refusal changes no counter)."""
    found = await _assigned(session, data)
    if found is not None and data.get("granted"):
        await add(session, found[0], found[1], extended=1)


async def on_reopened(session: AsyncSession, data: dict[str, Any]) -> None:
    """重办: the next completion starts a new call-back round."""
    found = await _assigned(session, data)
    if found is None:
        return
    case, index = found
    case.status = "reopened"
    case.round += 1
    case.callback_attempts = 0
    await add(session, case, index, reopened=1)


async def on_merged(session: AsyncSession, data: dict[str, Any]) -> None:
    """合并: a duplicate report joined an earlier case; it stays a member of hot spots and repeat complaints."""
    case = await held(session, data["case_id"])
    if case is not None:
        case.status = data["status"]
        case.merged_into = data.get("merged_into")


async def on_status(session: AsyncSession, data: dict[str, Any]) -> None:
    """Any other case event: follow the status."""
    case = await held(session, data["case_id"])
    if case is not None:
        case.status = data["status"]


async def on_whistle_rated(session: AsyncSession, data: dict[str, Any], at: datetime, tz: ZoneInfo) -> None:
    """A town rated a department it called: the bottom-up share of that department's score (by rating day)."""
    keys = unit_keys(str(data["unit_code"]), at.astimezone(tz).date())
    await rollup_store.bump(session, keys, {"bottom_up_ratings": 1, "bottom_up_score_sum": int(data["score"])})


_NOT_IN_KEY = re.compile(r"[\s,，。.、;；:：()（）\-—]+")


def place_key(address: str | None, lat: float | None, lon: float | None) -> str | None:
    """The spot a report names: its address without spaces or punctuation, else its GPS point to about 10 m."""
    key = _NOT_IN_KEY.sub("", address or "").lower()
    if key:
        return f"addr:{key[:300]}"
    if lat is not None and lon is not None:
        return f"gps:{lat:.4f},{lon:.4f}"
    return None


async def on_report_received(
    session: AsyncSession, data: dict[str, Any], at: datetime, *, tz: ZoneInfo, cell_m: float
) -> None:
    """Where a report was made (address and GPS point); the reporter's personal data is not kept."""
    await spots.serialise(session, data["id"])
    if await chunk.place(session, data["id"]) is not None:
        return
    location = data.get("location") or {}
    received = data.get("received_at")
    chunk.add_place(
        session,
        {
            "case_id": data["id"],
            "address": (data.get("address") or None) and str(data["address"])[:300],
            "place_key": place_key(data.get("address"), location.get("lat"), location.get("lon")),
            "lat": location.get("lat"),
            "lon": location.get("lon"),
            "received_at": datetime.fromisoformat(received) if received else at,
        },
    )
    case = await held(session, data["id"])
    if case is not None:  # the case was judged first: its cell may now be the report's GPS square or address
        await spots.recount(session, case, tz=tz, cell_m=cell_m)


async def evaluation_of(session: AsyncSession, case_id: str) -> tuple[EvaluatedCase, list[Feedback]]:
    """A case and its call-back rounds."""
    case = await session.get(EvaluatedCase, case_id)
    if case is None:
        raise NotFound(f"evaluation has no case {case_id} (yet)", field="case_id")
    rows = await session.execute(select(Feedback).where(Feedback.case_id == case_id).order_by(Feedback.round))
    return case, list(rows.scalars())

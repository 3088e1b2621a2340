"""Durable deadline timers: warnings, overdue, urging (催办) and supervision (督办), each fired exactly once.

A timer row is marked fired in the same transaction as the trail entry and the events it causes, so a crash
either leaves it pending (it fires after the restart) or done (it never fires again).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.dispatch import lifecycle, trail
from services.dispatch.context import DispatchContext
from services.dispatch.models import Case, CaseTask, Timer
from services.dispatch.workdays import add_working_days
from shared import topics
from shared.db import flush_buffer, insert_rows, write_buffer
from shared.events import utcnow

log = logging.getLogger("jiesu.dispatch.timers")

AWAITING_SIGN = frozenset({"dispatched", "reopened"})
AWAITING_COMPLETION = frozenset({"dispatched", "reopened", "signed", "in_progress", "extension_requested"})
SIGN_KINDS = ("sign_warning", "sign_overdue")
COMPLETE_KINDS = ("complete_warning", "complete_overdue", "urge", "supervise")


def _warn_at(start: datetime, due: datetime, fraction: float) -> datetime:
    return due - (due - start) * fraction


async def schedule_case_timers(
    session: AsyncSession, ctx: DispatchContext, case: Case, start: datetime, *, fresh: bool = False
) -> None:
    """Timers for a dispatched case: sign and completion warnings, overdue, urging, supervision."""
    if not fresh:
        await cancel(session, case.id, SIGN_KINDS + COMPLETE_KINDS)
    rows: list[tuple[str, datetime]] = []
    if case.sign_deadline is not None:
        rows.append(("sign_warning", _warn_at(start, case.sign_deadline, ctx.settings.warn_fraction)))
        rows.append(("sign_overdue", case.sign_deadline))
    await _add(session, case, rows + _completion_rows(ctx, case, start))


async def schedule_completion_timers(session: AsyncSession, ctx: DispatchContext, case: Case, start: datetime) -> None:
    """(Re)schedule the completion timers, e.g. after an extension moved the deadline."""
    await cancel(session, case.id, COMPLETE_KINDS)
    await _add(session, case, _completion_rows(ctx, case, start))


def _completion_rows(ctx: DispatchContext, case: Case, start: datetime) -> list[tuple[str, datetime]]:
    if case.complete_deadline is None:
        return []
    policy = ctx.settings
    due = case.complete_deadline
    return [
        ("complete_warning", _warn_at(start, due, policy.warn_fraction)),
        ("complete_overdue", due),
        ("urge", due + timedelta(hours=policy.urge_after_hours)),
        ("supervise", add_working_days(due, policy.supervise_after_working_days, tz=ctx.tz).due),
    ]


async def _add(session: AsyncSession, case: Case, rows: list[tuple[str, datetime]], unit: str | None = None) -> None:
    if not rows:
        return
    values = [{"case_id": case.id, "kind": kind, "unit_code": unit, "due_at": at} for kind, at in rows]
    table = Timer.__table__
    assert isinstance(table, Table)
    buffer = write_buffer(session)
    if buffer is None:
        await insert_rows(session, table, values)
    else:
        buffer.add(table, values)


async def schedule_checkin(session: AsyncSession, case: Case, *, unit: str, deadline: datetime) -> None:
    """A whistled department's check-in deadline (报到)."""
    await _add(session, case, [("checkin_missed", deadline)], unit=unit)


async def cancel(session: AsyncSession, case_id: str, kinds: tuple[str, ...]) -> None:
    """Cancel a case's pending timers of some kinds."""
    await flush_buffer(session)  # timers scheduled earlier in the same chunk must be cancelled too
    await session.execute(
        update(Timer)
        .where(Timer.case_id == case_id, Timer.kind.in_(kinds), Timer.fired_at.is_(None))
        .values(fired_at=utcnow(), outcome="cancelled")
    )


async def _fire(session: AsyncSession, ctx: DispatchContext, timer: Timer, now: datetime) -> str:
    case = (await session.execute(select(Case).where(Case.id == timer.case_id).with_for_update())).scalar_one()
    unit = timer.unit_code or case.primary_unit
    detail: dict[str, Any] = {"timer": timer.kind, "due_at": timer.due_at.isoformat()}
    if timer.kind in SIGN_KINDS and case.status not in AWAITING_SIGN:
        return "moot"
    if timer.kind in COMPLETE_KINDS and case.status not in AWAITING_COMPLETION:
        return "moot"
    if timer.kind == "checkin_missed":
        task = (
            await session.execute(select(CaseTask).where(CaseTask.case_id == case.id, CaseTask.unit_code == unit))
        ).scalar_one_or_none()
        if task is None or task.checked_in_at is not None:
            return "moot"
    event_type, action = {
        "sign_warning": (topics.CASE_DEADLINE_WARNING, "warn"),
        "complete_warning": (topics.CASE_DEADLINE_WARNING, "warn"),
        "sign_overdue": (topics.CASE_OVERDUE, "overdue"),
        "complete_overdue": (topics.CASE_OVERDUE, "overdue"),
        "urge": (topics.CASE_URGED, "urge"),
        "supervise": (topics.CASE_SUPERVISED, "supervise"),
        "checkin_missed": (topics.CASE_CHECKIN_MISSED, "escalate"),
    }[timer.kind]
    deadline = "sign" if timer.kind.startswith("sign") else "checkin" if timer.kind == "checkin_missed" else "complete"
    detail |= {"deadline": deadline, "unit_code": unit}
    await trail.append(
        session,
        case=case,
        at=now,
        actor="system:timer",
        action=action,
        from_status=case.status,
        to_status=case.status,
        detail=detail,
    )
    await lifecycle.emit(session, case, event_type, now, **detail)
    if unit:
        await lifecycle.notify_unit(session, case, unit, topics.UNIT_NOTICE, now, notice=action, **detail)
    return "fired"


async def fire_due(
    sessions: async_sessionmaker[AsyncSession], ctx: DispatchContext, *, now: datetime, limit: int = 100
) -> int:
    """Fire every pending timer due by ``now`` (in batches); return how many fired."""
    fired = 0
    while True:
        async with sessions() as session, session.begin():
            due = list(
                (
                    await session.execute(
                        select(Timer)
                        .where(Timer.fired_at.is_(None), Timer.due_at <= now)
                        .order_by(Timer.due_at, Timer.id)
                        .limit(limit)
                        .with_for_update(skip_locked=True)
                    )
                ).scalars()
            )
            for timer in due:
                timer.outcome = await _fire(session, ctx, timer, now)
                timer.fired_at = now
                fired += timer.outcome == "fired"
        if len(due) < limit:
            return fired


async def run(sessions: async_sessionmaker[AsyncSession], ctx: DispatchContext, stop: asyncio.Event) -> None:
    """Fire due timers until stopped."""
    while not stop.is_set():
        try:
            await fire_due(sessions, ctx, now=utcnow())
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("firing timers failed; retrying")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), ctx.settings.timer_poll_seconds)

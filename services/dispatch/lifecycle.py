"""Low-level steps every case change uses: move through the state machine, record, and announce."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.dispatch import states, trail
from services.dispatch.models import Case, messaging
from shared import topics
from shared.events import CloudEvent
from shared.outbox import add_event

SOURCE = "/jiesu/dispatch"


def mask_phone(phone: str | None) -> str | None:
    """Mask a phone number as 138****1234 before it leaves for units."""
    if not phone:
        return None
    digits = phone.replace(" ", "").replace("-", "")
    return "*" * len(digits) if len(digits) <= 7 else f"{digits[:3]}{'*' * (len(digits) - 7)}{digits[-4:]}"


def case_summary(case: Case) -> dict[str, Any]:
    """What every case event carries."""
    return {
        "case_id": case.id,
        "case_number": case.case_number,
        "status": case.status,
        "source": case.source,
        "kind_code": case.kind_code,
        "category_code": case.category_code,
        "domain_code": case.domain_code,
        "primary_unit": case.primary_unit,
        "cooperating_units": case.cooperating_units,
        "territory": case.territory,
        "urgency": case.urgency,
        "reopen_count": case.reopen_count,
    }


# Events that carry the caller's keyed pseudonym, so evaluation can recognise repeat callers (never a unit topic).
CALLER_KEYED = frozenset({topics.CASE_JUDGED, topics.CASE_DISPATCHED})


async def emit(session: AsyncSession, case: Case, event_type: str, at: datetime, **extra: Any) -> None:
    if event_type in CALLER_KEYED:
        extra = {"caller_key": case.reporter_key} | extra
    await add_event(
        session,
        messaging,
        topic=topics.CASES,
        aggregatetype="case",
        aggregateid=case.id,
        event=CloudEvent(type=event_type, source=SOURCE, subject=case.id, time=at, data=case_summary(case) | extra),
    )


async def assign(session: AsyncSession, case: Case, at: datetime, *, reason: str) -> None:
    """Put the work on each unit's topic: the primary unit and every cooperating unit."""
    assert case.primary_unit is not None
    roles = [(case.primary_unit, "primary")] + [(u, "cooperating") for u in case.cooperating_units]
    for unit, role in roles:
        await add_event(
            session,
            messaging,
            topic=topics.unit_topic(unit),
            aggregatetype="case",
            aggregateid=case.id,
            event=CloudEvent(
                type=topics.ASSIGNMENT_CREATED,
                source=SOURCE,
                subject=case.id,
                time=at,
                data=case_summary(case)
                | {
                    "unit_code": unit,
                    "role": role,
                    "reason": reason,
                    "content": case.content,
                    "subject": case.subject,
                    "address": case.address,
                    "location": {"lat": case.lat, "lon": case.lon} if case.lat is not None else None,
                    "reporter_phone": case.reporter_phone_masked,
                    "sign_deadline": case.sign_deadline.isoformat() if case.sign_deadline else None,
                    "complete_deadline": case.complete_deadline.isoformat() if case.complete_deadline else None,
                },
            ),
        )


async def move(
    session: AsyncSession,
    case: Case,
    action: str,
    *,
    actor: str,
    at: datetime,
    detail: dict[str, Any] | None = None,
) -> None:
    """Apply one transition of the state machine and record it in the trail."""
    before = case.status
    case.status = states.next_status(action, before)
    case.updated_at = at
    await trail.append(
        session,
        case=case,
        at=at,
        actor=actor,
        action=action,
        from_status=before,
        to_status=case.status,
        detail=detail,
    )


async def notify_unit(
    session: AsyncSession, case: Case, unit: str, event_type: str, at: datetime, **extra: Any
) -> None:
    """Send a notice (urging, warning, rejection) to one unit's topic."""
    await add_event(
        session,
        messaging,
        topic=topics.unit_topic(unit),
        aggregatetype="case",
        aggregateid=case.id,
        event=CloudEvent(
            type=event_type,
            source=SOURCE,
            subject=case.id,
            time=at,
            data=case_summary(case) | {"unit_code": unit, **extra},
        ),
    )

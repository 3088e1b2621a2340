"""Intake follows the case topic to keep each report's status current."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.service import follow_case_status
from shared import topics
from shared.consumer import GATHER_OFF_PATH, ConsumerSpec
from shared.events import CloudEvent


async def on_case_event(session: AsyncSession, event: CloudEvent) -> None:
    """Any case event: copy its status, primary unit and completion deadline (if it carries one) onto the report."""
    data = event.data
    if "status" not in data or "case_id" not in data:
        return
    deadline = data.get("complete_deadline")
    await follow_case_status(
        session,
        report_id=str(data["case_id"]),
        status=str(data["status"]),
        at=event.time,
        primary_unit=str(data["primary_unit"]) if data.get("primary_unit") else None,
        complete_deadline=datetime.fromisoformat(str(deadline)) if deadline else None,
        deadline_given="complete_deadline" in data,
    )


def consumer_specs(namespace: str) -> list[ConsumerSpec]:
    """What intake consumes."""
    return [
        ConsumerSpec(
            group=f"{namespace}jiesu-intake-status",
            topics=[topics.named(namespace, topics.CASES)],
            handlers={},
            fallback=on_case_event,
            gather=GATHER_OFF_PATH,  # a report's mirrored status may lag a tenth of a second
        )
    ]

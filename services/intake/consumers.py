"""Intake follows the case topic to keep each report's status current."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.service import follow_case_status
from shared import topics
from shared.consumer import ConsumerSpec
from shared.events import CloudEvent


async def on_case_event(session: AsyncSession, event: CloudEvent) -> None:
    """Any case event: copy its status onto the report."""
    if "status" not in event.data or "case_id" not in event.data:
        return
    await follow_case_status(
        session, report_id=str(event.data["case_id"]), status=str(event.data["status"]), at=event.time
    )


def consumer_specs(namespace: str) -> list[ConsumerSpec]:
    """What intake consumes."""
    return [
        ConsumerSpec(
            group=f"{namespace}jiesu-intake-status",
            topics=[topics.named(namespace, topics.CASES)],
            handlers={},
            fallback=on_case_event,
        )
    ]

"""Evaluation follows the case topic (every step of a case) and the reports topic (where reports were made)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from services.evaluation import chunk, service
from services.evaluation.settings import DEFAULT_CELL_M
from shared import topics
from shared.consumer import GATHER_OFF_PATH, ConsumerSpec, Handler
from shared.events import CloudEvent

# Events applied per transaction: a whole fetch (the consumer loop fetches up to 200). A chunk's cost is mostly per
# row written, and its roll-up and hot-spot rows are shared by many of its events (the city's, a unit's, a cell's),
# so larger chunks write fewer rows per event; a transaction of 200 events still takes well under a second.
CHUNK = 200


def consumer_specs(namespace: str, tz: ZoneInfo, *, cell_m: float = DEFAULT_CELL_M) -> list[ConsumerSpec]:
    """What evaluation consumes; ``cell_m`` sizes the hot-spot squares of reports located only by GPS."""

    async def judged(session: AsyncSession, event: CloudEvent) -> None:
        await service.on_judged(session, event.data, event.time, tz=tz, cell_m=cell_m)

    async def dispatched(session: AsyncSession, event: CloudEvent) -> None:
        await service.on_dispatched(session, event.data, event.time, tz=tz, cell_m=cell_m)

    async def signed(session: AsyncSession, event: CloudEvent) -> None:
        await service.on_signed(session, event.data, event.time)

    async def completed(session: AsyncSession, event: CloudEvent) -> None:
        await service.on_completed(session, event.data, event.time)

    async def returned(session: AsyncSession, event: CloudEvent) -> None:
        await service.on_returned(session, event.data)

    async def extension_requested(session: AsyncSession, event: CloudEvent) -> None:
        await service.on_extension_requested(session, event.data)

    async def extension_decided(session: AsyncSession, event: CloudEvent) -> None:
        await service.on_extension_decided(session, event.data)

    async def reopened(session: AsyncSession, event: CloudEvent) -> None:
        await service.on_reopened(session, event.data)

    async def merged(session: AsyncSession, event: CloudEvent) -> None:
        await service.on_merged(session, event.data)

    async def status(session: AsyncSession, event: CloudEvent) -> None:
        if "status" in event.data and "case_id" in event.data:
            await service.on_status(session, event.data)

    async def overdue(session: AsyncSession, event: CloudEvent) -> None:
        await service.on_overdue(session, event.data)

    async def rated(session: AsyncSession, event: CloudEvent) -> None:
        await service.on_whistle_rated(session, event.data, event.time, tz)

    async def received(session: AsyncSession, event: CloudEvent) -> None:
        await service.on_report_received(session, event.data, event.time, tz=tz, cell_m=cell_m)

    cases: dict[str, Handler] = {
        topics.CASE_JUDGED: judged,
        topics.CASE_DISPATCHED: dispatched,
        topics.CASE_SIGNED: signed,
        topics.CASE_COMPLETED: completed,
        topics.CASE_RETURNED: returned,
        topics.CASE_EXTENSION_REQUESTED: extension_requested,
        topics.CASE_EXTENSION_DECIDED: extension_decided,
        topics.CASE_REOPENED: reopened,
        topics.CASE_MERGED: merged,
        topics.CASE_OVERDUE: overdue,
        topics.WHISTLE_RATED: rated,
    }
    reports: dict[str, Handler] = {topics.REPORT_RECEIVED: received}
    return [
        ConsumerSpec(
            group=f"{namespace}jiesu-evaluation-cases",
            topics=[topics.named(namespace, topics.CASES)],
            handlers=cases,
            fallback=status,
            prepare=chunk.prepare,
            batch=CHUNK,
            gather=GATHER_OFF_PATH,
        ),
        ConsumerSpec(
            group=f"{namespace}jiesu-evaluation-reports",
            topics=[topics.named(namespace, topics.REPORTS)],
            handlers=reports,
            prepare=chunk.prepare,
            batch=CHUNK,
            gather=GATHER_OFF_PATH,
        ),
    ]

"""Dispatch consumes received reports (to judge them) and evaluation's verdicts (to close or reopen)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.dispatch import service
from services.dispatch.context import DispatchContext
from shared import topics
from shared.consumer import ConsumerSpec, Handler
from shared.events import CloudEvent


def consumer_specs(namespace: str, ctx: DispatchContext) -> list[ConsumerSpec]:
    """What dispatch consumes."""

    async def on_report_received(session: AsyncSession, event: CloudEvent) -> None:
        await service.judge_report(session, ctx, event.data)

    async def on_verdict(session: AsyncSession, event: CloudEvent) -> None:
        await service.apply_verdict(session, event.data, event.time)

    reports: dict[str, Handler] = {topics.REPORT_RECEIVED: on_report_received}
    verdicts: dict[str, Handler] = {topics.VERDICT_RECORDED: on_verdict}
    return [
        ConsumerSpec(
            group=f"{namespace}jiesu-dispatch-judge",
            topics=[topics.named(namespace, topics.REPORTS)],
            handlers=reports,
        ),
        ConsumerSpec(
            group=f"{namespace}jiesu-dispatch-verdicts",
            topics=[topics.named(namespace, topics.VERDICTS)],
            handlers=verdicts,
        ),
    ]

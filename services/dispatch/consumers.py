"""Dispatch consumes received reports (to judge them), evaluation's verdicts, and units' actions sent as events."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from services.dispatch import handling, service
from services.dispatch.context import DispatchContext
from services.dispatch.lifecycle import SOURCE
from services.dispatch.models import messaging
from services.dispatch.schemas import (
    CheckInCreate,
    CompleteCreate,
    ExtensionCreate,
    ProgressCreate,
    ReturnCreate,
    SignCreate,
    TaskReportCreate,
)
from shared import topics
from shared.consumer import GATHER_OFF_PATH, ConsumerSpec, Handler
from shared.db import flush_buffer, write_buffer
from shared.events import CloudEvent
from shared.outbox import add_event
from shared.problems import Problem

log = logging.getLogger("jiesu.dispatch.responses")

# The actions a unit may send on the responses topic, validated exactly as over REST.
ACTIONS: dict[str, type[BaseModel]] = {
    "sign": SignCreate,
    "progress": ProgressCreate,
    "return": ReturnCreate,
    "complete": CompleteCreate,
    "extension": ExtensionCreate,
    "checkin": CheckInCreate,
    "report": TaskReportCreate,
}


async def apply_unit_action(session: AsyncSession, ctx: DispatchContext, data: dict[str, Any]) -> None:
    """Apply one action sent as an event; a refused one changes nothing and the unit hears why."""
    case_id = str(data.get("case_id", ""))
    action = str(data.get("action", ""))
    fields = {k: v for k, v in data.items() if k not in ("case_id", "action")}
    try:
        schema = ACTIONS.get(action)
        if schema is None:
            raise Problem(f"unknown action {action!r}; one of {', '.join(ACTIONS)}", field="action")
        body: Any = schema.model_validate(fields)
        # Buffered rows of earlier events must not be written inside the savepoint a refusal rolls back.
        await flush_buffer(session)
        buffer = write_buffer(session)
        mark = buffer.mark() if buffer is not None else {}
        try:
            async with session.begin_nested():
                await _apply_action(session, ctx, case_id, action, body)
        except (Problem, ValidationError):
            if buffer is not None:
                buffer.rollback_to(mark)
            raise
    except (Problem, ValidationError) as refused:
        detail = refused.detail if isinstance(refused, Problem) else str(refused.errors(include_url=False))
        status = refused.status if isinstance(refused, Problem) else 422
        unit = str(data.get("unit_code") or "unknown")
        log.info("unit action %s on %s by %s refused: %s", action, case_id, unit, detail)
        await add_event(
            session,
            messaging,
            topic=topics.unit_topic(unit),
            aggregatetype="case",
            aggregateid=case_id or "unknown",
            event=CloudEvent(
                type=topics.ACTION_REJECTED,
                source=SOURCE,
                subject=case_id or None,
                data={"case_id": case_id, "action": action, "unit_code": unit, "status": status, "detail": detail},
            ),
        )


async def _apply_action(session: AsyncSession, ctx: DispatchContext, case_id: str, action: str, body: Any) -> None:
    if action in ("sign", "progress", "return", "complete"):
        detail = body.model_dump(exclude={"unit_code"}, exclude_none=True)
        await handling.unit_action(session, ctx, case_id, action=action, unit_code=body.unit_code, detail=detail)
    elif action == "extension":
        await handling.request_extension(
            session, case_id, unit_code=body.unit_code, working_days=body.working_days, reason=body.reason
        )
    elif action == "checkin":
        await handling.check_in(session, case_id, unit_code=body.unit_code, note=body.note)
    else:
        await handling.report_task(session, case_id, unit_code=body.unit_code, report=body.report)


def consumer_specs(namespace: str, ctx: DispatchContext) -> list[ConsumerSpec]:
    """What dispatch consumes."""

    async def on_report_received(session: AsyncSession, event: CloudEvent) -> None:
        await service.judge_report(session, ctx, event.data)

    async def on_verdict(session: AsyncSession, event: CloudEvent) -> None:
        await service.apply_verdict(session, ctx, event.data, event.time)

    async def on_unit_action(session: AsyncSession, event: CloudEvent) -> None:
        await apply_unit_action(session, ctx, event.data)

    async def prepare_reports(session: AsyncSession, events: Sequence[CloudEvent]) -> None:
        await service.prepare_reports(session, ctx, [e.data for e in events if e.type == topics.REPORT_RECEIVED])

    reports: dict[str, Handler] = {topics.REPORT_RECEIVED: on_report_received}
    verdicts: dict[str, Handler] = {topics.VERDICT_RECORDED: on_verdict}
    actions: dict[str, Handler] = {topics.UNIT_ACTION: on_unit_action}
    return [
        ConsumerSpec(
            group=f"{namespace}jiesu-dispatch-judge",
            topics=[topics.named(namespace, topics.REPORTS)],
            handlers=reports,
            prepare=prepare_reports,
        ),
        ConsumerSpec(
            group=f"{namespace}jiesu-dispatch-verdicts",
            topics=[topics.named(namespace, topics.VERDICTS)],
            handlers=verdicts,
            gather=GATHER_OFF_PATH,  # call-back verdicts reopen or close cases that are done already
        ),
        ConsumerSpec(
            group=f"{namespace}jiesu-dispatch-responses",
            topics=[topics.named(namespace, topics.RESPONSES)],
            handlers=actions,
        ),
    ]

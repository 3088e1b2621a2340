"""Reports judged through the judge consumer's chunk path, and the same reports judged one at a time."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from itertools import count
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.dispatch import service
from services.dispatch.consumers import consumer_specs
from services.dispatch.context import DispatchContext
from services.dispatch.models import messaging
from shared import topics
from shared.bus.base import Delivery
from shared.consumer import handle_chunk
from shared.events import CloudEvent

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
NOISE = "工地半夜还在施工，噪音吵得睡不着"  # K0501, DEPT-EE with DEPT-HC co-handling (协办)
LIGHT = "小区门口的路灯坏了好几天了晚上一片漆黑"  # K0101
GARBAGE = "小区垃圾桶三天没人清理了，臭气熏天"  # K0202, the street handles it
GAS = "楼道里有很浓的煤气味，怕是燃气泄漏了"  # transferred to 119
COURT = "我和开发商的房屋纠纷法院已立案，希望你们催一下"  # refused: already in court
VAGUE = "你好我想问一下"  # too vague for the classifier: triage

Session = tuple[DispatchContext, async_sessionmaker[AsyncSession]]
Databases = Callable[[], Awaitable[Session]]
_numbers = count(1)


def report(content: str, *, at: datetime, **extra: Any) -> CloudEvent:
    """A report.received event as intake publishes it."""
    data = {
        "id": str(uuid.uuid4()),
        "case_number": f"JS20261126{next(_numbers):07d}",
        "source": "hotline",
        "content": content,
        "received_at": at.isoformat(),
    } | extra
    return CloudEvent(type=topics.REPORT_RECEIVED, source="/jiesu/intake", subject=data["id"], data=data)


async def in_chunks(
    events: list[CloudEvent], ctx: DispatchContext, sessions: async_sessionmaker[AsyncSession], *, size: int = 50
) -> None:
    """Through the judge consumer's chunk path, ``size`` reports per transaction."""
    [judge, _, _] = consumer_specs("", ctx)
    for start in range(0, len(events), size):
        chunk = events[start : start + size]
        delivered = [
            Delivery(topic=topics.REPORTS, partition=0, offset=i, key=e.subject, event=e) for i, e in enumerate(chunk)
        ]
        assert await handle_chunk(delivered, spec=judge, sessions=sessions, tables=messaging) == len(chunk)


async def one_at_a_time(
    events: list[CloudEvent], ctx: DispatchContext, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Each report judged in its own transaction, outside any consumer chunk."""
    for event in events:
        async with sessions() as session, session.begin():
            assert await service.judge_report(session, ctx, event.data) is not None

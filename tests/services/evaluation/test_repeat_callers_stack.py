"""Repeat callers across the services: dispatch's caller pseudonym reaches evaluation, never a unit's topic."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from shared import topics
from tests.helpers import eventually
from tests.stack import Stack, embedded_stack

PHONE = "13912345678"


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    async with embedded_stack(tmp_path, timers=False) as running_stack:
        yield running_stack


async def test_the_same_caller_is_recognised_by_evaluation_and_units_never_see_the_pseudonym(stack: Stack) -> None:
    bus = stack.apps["dispatch"].state.runtime.bus
    cases = bus.subscribe(group="scan-cases", topics=[topics.CASES])
    unit = bus.subscribe(group="scan-unit", topics=[topics.unit_topic("DEPT-UM")])
    await cases.start()
    await unit.start()
    ids = []
    for n, (phone, address) in enumerate([(PHONE, "幸福路12号"), (PHONE, "光明街8号"), ("13800000001", "和平里1号")]):
        accepted = await stack.report(
            source="hotline",
            external_id=f"call-{n}",
            content="路灯不亮了，晚上一片漆黑",
            address=address,
            reporter={"name": "王五", "phone": phone},
        )
        ids.append(str(accepted["id"]))
        await stack.case_in(ids[-1], "dispatched", "merged")

    async def grouped() -> dict[str, Any] | None:
        page = (await stack.evaluation.get("/v1/repeat-complaints", params={"unit": "DEPT-UM"})).json()
        same = [item for item in page["items"] if item["rule"] == "same_caller"]
        return same[0] if same else None

    group = await eventually(grouped, what="a same-caller repeat complaint in evaluation")
    assert sorted(m["case_id"] for m in group["members"]) == sorted(ids[:2])
    assert group["units"] == ["DEPT-UM"]
    view = (await stack.evaluation.get(f"/v1/evaluations/{ids[1]}")).json()
    assert [mark["rule"] for mark in view["repeats"]] == ["same_caller"]

    on_cases = [d.event for d in await cases.fetch(timeout=0.5)]
    on_unit = [d.event for d in await unit.fetch(timeout=0.5)]
    await cases.close()
    await unit.close()
    keyed = [e.data["caller_key"] for e in on_cases if e.type in (topics.CASE_JUDGED, topics.CASE_DISPATCHED)]
    assert keyed and all(isinstance(key, str) and len(key) == 64 for key in keyed)
    assert PHONE not in str([e.data for e in on_cases])
    assert on_unit and all("caller_key" not in e.data for e in on_unit)

"""The unit's side of a case: co-handling, whistle-and-report, extensions, disputes, actions sent as events."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from services.dispatch import timers
from services.dispatch.context import DispatchContext
from shared import topics
from shared.bus.base import OutgoingMessage
from shared.events import CloudEvent, utcnow
from tests.helpers import eventually
from tests.stack import Stack, embedded_stack


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    # Timers are fired by the tests themselves, at chosen times.
    async with embedded_stack(tmp_path, timers=False) as running_stack:
        yield running_stack


async def dispatched(stack: Stack, **body: Any) -> dict[str, Any]:
    accepted = await stack.report(**body)
    return await stack.case_in(str(accepted["id"]), "dispatched")


async def post(stack: Stack, path: str, body: dict[str, Any], status: int = 200) -> dict[str, Any]:
    answer = await stack.dispatch.post(path, json=body)
    assert answer.status_code == status, answer.text
    result: dict[str, Any] = answer.json()
    return result


async def fire(stack: Stack, *, after: timedelta) -> int:
    app = stack.apps["dispatch"]
    ctx: DispatchContext = app.state.dispatch
    return await timers.fire_due(app.state.runtime.sessions, ctx, now=utcnow() + after)


async def test_co_handling_shows_what_each_cooperating_unit_reported(stack: Stack) -> None:
    case = await dispatched(stack, source="hotline", external_id="co1", content="工地半夜施工，噪音扰民")
    url = f"/v1/cases/{case['id']}"
    assert [(t["unit_code"], t["role"], t["status"]) for t in case["tasks"]] == [("DEPT-HC", "cooperating", "assigned")]
    stranger = await stack.dispatch.post(f"{url}/tasks/report", json={"unit_code": "DEPT-MR", "report": "无"})
    assert stranger.status_code == 403
    await post(stack, f"{url}/tasks/report", {"unit_code": "DEPT-HC", "report": "已核查施工许可，责令调整作业时间"})
    await post(stack, f"{url}/sign", {"unit_code": "DEPT-EE"})
    done = await post(stack, f"{url}/complete", {"unit_code": "DEPT-EE", "result": "已处罚并监测"})
    [share] = done["result"]["cooperation"]
    assert (share["unit_code"], share["status"], share["report"]) == (
        "DEPT-HC",
        "reported",
        "已核查施工许可，责令调整作业时间",
    )


async def test_a_whistle_and_report_case(stack: Stack) -> None:
    case = await dispatched(
        stack,
        source="town",
        external_id="w1",
        content="辖区工地夜间施工噪声扰民，请生态环境和住建部门到场",
        address="西河大街",
        requested_departments=["DEPT-EE", "DEPT-HC"],
    )
    url = f"/v1/cases/{case['id']}"
    whistled = {t["unit_code"]: t for t in case["tasks"] if t["role"] == "whistle"}
    assert set(whistled) == {"DEPT-HC"} and whistled["DEPT-HC"]["checkin_deadline"]
    assert case["primary_unit"] == "DEPT-EE"
    early = await stack.dispatch.post(f"{url}/tasks/report", json={"unit_code": "DEPT-HC", "report": "到场"})
    assert early.status_code == 409
    unrated = await stack.dispatch.post(f"{url}/ratings", json={"unit_code": "DEPT-HC", "score": 4})
    assert unrated.status_code == 409
    # Nobody came in time: the missed check-in escalates, once.
    assert await fire(stack, after=timedelta(hours=3)) >= 1
    assert await fire(stack, after=timedelta(hours=3)) == 0
    timeline = (await stack.dispatch.get(f"{url}/timeline")).json()
    escalations = [e for e in timeline["entries"] if e["action"] == "escalate"]
    assert [e["detail"]["unit_code"] for e in escalations] == ["DEPT-HC"]
    checked = await post(stack, f"{url}/checkin", {"unit_code": "DEPT-HC", "note": "执法人员已到场"})
    assert next(t for t in checked["tasks"] if t["unit_code"] == "DEPT-HC")["status"] == "checked_in"
    again = await stack.dispatch.post(f"{url}/checkin", json={"unit_code": "DEPT-HC"})
    assert again.status_code == 409
    await post(stack, f"{url}/tasks/report", {"unit_code": "DEPT-HC", "report": "核查施工许可，约谈施工单位"})
    rated = await post(stack, f"{url}/ratings", {"unit_code": "DEPT-HC", "score": 4, "rated_by": "town:ST-110199002"})
    assert next(t for t in rated["tasks"] if t["unit_code"] == "DEPT-HC")["rating"] == 4
    twice = await stack.dispatch.post(f"{url}/ratings", json={"unit_code": "DEPT-HC", "score": 5})
    assert twice.status_code == 409

    async def rating_counted() -> dict[str, Any] | None:
        rows = (await stack.evaluation.get("/v1/metrics", params={"unit": "DEPT-HC", "grouping": "all"})).json()
        return rows["items"][0] if rows["items"] and rows["items"][0]["bottom_up_rating"]["ratings"] else None

    row = await eventually(rating_counted, what="the town's rating in evaluation")
    assert row["bottom_up_rating"] == {"mean": 4.0, "ratings": 1}
    assert (await stack.dispatch.get(f"{url}/timeline")).json()["verified"] is True


async def test_an_extension_granted_moves_the_deadline_and_one_refused_does_not(stack: Stack) -> None:
    case = await dispatched(stack, source="hotline", external_id="x1", content="公司拖欠工资三个月不发")
    url = f"/v1/cases/{case['id']}"
    early = await stack.dispatch.post(
        f"{url}/extension", json={"unit_code": "DEPT-HRSS", "working_days": 5, "reason": "需调查"}
    )
    assert early.status_code == 409  # not signed yet
    await post(stack, f"{url}/sign", {"unit_code": "DEPT-HRSS"})
    asked = await post(
        stack, f"{url}/extension", {"unit_code": "DEPT-HRSS", "working_days": 5, "reason": "需劳动监察立案调查"}
    )
    assert asked["status"] == "extension_requested"
    granted = await post(stack, f"{url}/extension/decision", {"granted": True, "actor": "centre:王", "reason": "同意"})
    assert granted["status"] == "in_progress"
    assert granted["complete_deadline"] > case["complete_deadline"]
    assert "extended by centre:王: 5 working days" in granted["deadline_basis"]["complete"]
    assert [(e["status"], e["decided_by"]) for e in granted["extensions"]] == [("granted", "centre:王")]
    await post(stack, f"{url}/extension", {"unit_code": "DEPT-HRSS", "working_days": 30, "reason": "再延"})
    refused = await post(stack, f"{url}/extension/decision", {"granted": False, "reason": "理由不足"})
    assert refused["complete_deadline"] == granted["complete_deadline"]
    assert [e["status"] for e in refused["extensions"]] == ["granted", "refused"]


async def test_an_extension_asked_after_the_deadline_is_refused(stack: Stack, tmp_path: Path) -> None:
    case = await dispatched(stack, source="hotline", external_id="x2", content="单位克扣工资还不签劳动合同")
    url = f"/v1/cases/{case['id']}"
    await post(stack, f"{url}/sign", {"unit_code": "DEPT-HRSS"})

    def past_deadline() -> None:
        with sqlite3.connect(tmp_path / "dispatch.db") as db:
            db.execute("update cases set complete_deadline = '2020-01-01 00:00:00.000000' where id = ?", (case["id"],))

    await asyncio.to_thread(past_deadline)
    late = await stack.dispatch.post(
        f"{url}/extension", json={"unit_code": "DEPT-HRSS", "working_days": 3, "reason": "晚了"}
    )
    assert late.status_code == 409 and "must be asked before" in late.json()["detail"]


async def test_a_dispute_climbs_to_the_city_and_is_settled_there(stack: Stack) -> None:
    case = await dispatched(stack, source="hotline", external_id="d1", content="小区物业不作为，电梯坏了一个月没人修")
    url = f"/v1/cases/{case['id']}"
    await post(stack, f"{url}/return", {"unit_code": "DEPT-HC", "reason": "电梯安全归市场监管"})
    await post(stack, f"{url}/judge", {"kind_code": "K0301", "primary_unit": "DEPT-MR"})
    disputed = await post(stack, f"{url}/return", {"unit_code": "DEPT-MR", "reason": "物业服务归住建"})
    assert disputed["status"] == "disputed"
    assert [d["level"] for d in disputed["disputes"]] == ["street"]
    assert case["id"] in [c["id"] for c in (await stack.dispatch.get("/v1/triage")).json()["items"]]
    wrong_level = await stack.dispatch.post(
        f"{url}/dispute/decision",
        json={"level": "city", "decided_by": "city", "primary_unit": "DEPT-HC", "reason": "越级决定"},
    )
    assert wrong_level.status_code == 409
    await post(stack, f"{url}/dispute/escalate", {"actor": "street:ST-110199001", "reason": "街道无法协调"})
    await post(stack, f"{url}/dispute/escalate", {"actor": "district:DIST-110199", "reason": "区级会商未达成一致"})
    top = await stack.dispatch.post(f"{url}/dispute/escalate", json={"actor": "city", "reason": "再上"})
    assert top.status_code == 409
    settled = await post(
        stack,
        f"{url}/dispute/decision",
        {
            "level": "city",
            "decided_by": "city:会商办",
            "primary_unit": "DEPT-HC",
            "cooperating_units": ["DEPT-MR"],
            "reason": "物业管理责任在住建，电梯检验由市场监管配合",
        },
    )
    assert (settled["status"], settled["primary_unit"], settled["cooperating_units"]) == (
        "dispatched",
        "DEPT-HC",
        ["DEPT-MR"],
    )
    [dispute] = settled["disputes"]
    assert (dispute["status"], dispute["level"], dispute["decided_by"]) == ("settled", "city", "city:会商办")
    assert [h["event"] for h in dispute["history"]] == ["opened", "escalated", "escalated", "settled"]
    assert "time in dispute is not counted" in settled["deadline_basis"]["complete"]
    actions = [e["action"] for e in settled["timeline"]]
    assert actions.count("escalate_dispute") == 2 and actions[-1] == "redispatch"


async def test_timers_fire_once_and_not_after_the_unit_acted(stack: Stack) -> None:
    case = await dispatched(stack, source="hotline", external_id="t1", content="路灯坏了一直不亮")
    url = f"/v1/cases/{case['id']}"
    assert await fire(stack, after=timedelta(hours=3)) == 2  # sign warning and sign overdue
    assert await fire(stack, after=timedelta(hours=3)) == 0
    await post(stack, f"{url}/sign", {"unit_code": "DEPT-UM"})
    await post(stack, f"{url}/complete", {"unit_code": "DEPT-UM", "result": "已修复"})
    assert await fire(stack, after=timedelta(days=60)) == 0  # completed: nothing more to chase
    actions = [e["action"] for e in (await stack.dispatch.get(f"{url}/timeline")).json()["entries"]]
    assert actions == ["receive", "judge", "dispatch", "warn", "overdue", "sign", "complete"]


async def test_unchased_work_is_warned_overdue_urged_and_supervised(stack: Stack) -> None:
    case = await dispatched(stack, source="hotline", external_id="t2", content="路灯坏了很多天")
    url = f"/v1/cases/{case['id']}"
    await post(stack, f"{url}/sign", {"unit_code": "DEPT-UM"})
    assert await fire(stack, after=timedelta(days=60)) == 4
    entries = (await stack.dispatch.get(f"{url}/timeline")).json()["entries"]
    assert [e["action"] for e in entries][-4:] == ["warn", "overdue", "urge", "supervise"]
    assert all(e["detail"]["deadline"] == "complete" for e in entries[-4:])

    async def overdue_counted() -> int | None:
        rows = (await stack.evaluation.get("/v1/metrics", params={"unit": "DEPT-UM", "grouping": "all"})).json()
        return rows["items"][0]["overdue"] if rows["items"] and rows["items"][0]["overdue"] else None

    assert await eventually(overdue_counted, what="the overdue count") == 1


async def test_actions_sent_as_events_are_validated_and_applied_once(stack: Stack) -> None:
    case = await dispatched(stack, source="hotline", external_id="r1", content="路灯不亮了")
    bus = stack.apps["dispatch"].state.runtime.bus

    def action(**data: Any) -> OutgoingMessage:
        event = CloudEvent(type=topics.UNIT_ACTION, source="/unit-app/DEPT-UM", subject=case["id"], data=data)
        return OutgoingMessage(topic=topics.RESPONSES, key=case["id"], event=event)

    early = action(case_id=case["id"], action="complete", unit_code="DEPT-UM", result="已修")
    sign = action(case_id=case["id"], action="sign", unit_code="DEPT-UM")
    await bus.publish([early, sign, sign])
    signed = await stack.case_in(case["id"], "signed")
    assert [e["action"] for e in signed["timeline"]].count("sign") == 1
    rejected: list[dict[str, Any]] = []
    subscription = bus.subscribe(group="unit-app", topics=[topics.unit_topic("DEPT-UM")])
    await subscription.start()

    async def refusal() -> bool:
        rejected.extend(
            d.event.data for d in await subscription.fetch(timeout=0.2) if d.event.type == topics.ACTION_REJECTED
        )
        return bool(rejected)

    await eventually(refusal, what="the refusal on the unit's topic")
    await subscription.close()
    assert rejected[0]["action"] == "complete" and rejected[0]["status"] == 409

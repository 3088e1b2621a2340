"""Judging, routing and the unit's actions, through the running services (embedded mode, in-process)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.stack import Stack, embedded_stack


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    async with embedded_stack(tmp_path) as running_stack:
        yield running_stack


async def dispatched(stack: Stack, **body: object) -> dict[str, object]:
    accepted = await stack.report(**body)
    return await stack.case_in(str(accepted["id"]), "dispatched", "triage", "transferred")


async def test_a_hotline_report_is_judged_routed_and_given_deadlines(stack: Stack) -> None:
    case = await dispatched(
        stack,
        source="hotline",
        external_id="h1",
        content="幸福路的路灯坏了三天了，晚上很黑",
        address="幸福路12号",
    )
    assert case["status"] == "dispatched"
    assert (case["kind_code"], case["category_code"], case["primary_unit"]) == ("K0101", "C01", "DEPT-UM")
    assert case["territory"]["codes"]["street"] == "110199001"
    assert case["sign_deadline"] and case["complete_deadline"]
    assert "working days" in case["deadline_basis"]["complete"]
    assert [e["action"] for e in case["timeline"]] == ["receive", "judge", "dispatch"]


async def test_a_grid_report_is_placed_by_its_grid_and_routed_to_the_street(stack: Stack) -> None:
    case = await dispatched(
        stack,
        source="grid",
        external_id="g1",
        content="菜市场外小贩占道经营",
        grid_code="11019900200201",
        kind_code="K0201",
    )
    assert case["territory"]["method"] == "grid_code"
    assert case["judge_method"] == "source-code"
    assert case["primary_unit"] == "ST-110199002"
    assert case["cooperating_units"] == ["DEPT-UM"]


async def test_a_towns_whistle_brings_the_departments_it_called(stack: Stack) -> None:
    case = await dispatched(
        stack,
        source="town",
        external_id="t1",
        content="楼顶有人私自加盖违法建设，需要部门联合执法",
        location={"lat": 39.91, "lon": 116.31},
        requested_departments=["DEPT-PN", "DEPT-HC", "DEPT-UNKNOWN"],
    )
    assert case["primary_unit"] == "ST-110199001"
    assert set(case["cooperating_units"]) == {"DEPT-PN", "DEPT-UM", "DEPT-HC"}


async def test_an_emergency_is_transferred_not_dispatched(stack: Stack) -> None:
    case = await dispatched(stack, source="hotline", external_id="e1", content="楼道里煤气味很重，好像燃气泄漏了")
    assert (case["status"], case["transfer_to"], case["primary_unit"]) == ("transferred", "119", None)


async def test_the_units_actions_follow_the_state_machine(stack: Stack) -> None:
    case = await dispatched(stack, source="hotline", external_id="h2", content="工地半夜还在施工，噪音太大")
    url = f"/v1/cases/{case['id']}"
    early = await stack.dispatch.post(f"{url}/complete", json={"unit_code": "DEPT-EE", "result": "已处理"})
    assert early.status_code == 409
    assert early.headers["content-type"] == "application/problem+json"
    assert early.json()["current_status"] == "dispatched"
    stranger = await stack.dispatch.post(f"{url}/sign", json={"unit_code": "DEPT-UM"})
    assert stranger.status_code == 403
    signed = await stack.dispatch.post(f"{url}/sign", json={"unit_code": "DEPT-EE"})
    assert signed.status_code == 200 and signed.json()["status"] == "signed"
    twice = await stack.dispatch.post(f"{url}/sign", json={"unit_code": "DEPT-EE"})
    assert twice.status_code == 409 and twice.json()["current_status"] == "signed"
    by_another = await stack.dispatch.post(f"{url}/sign", json={"unit_code": "DEPT-UM"})
    assert by_another.status_code == 409 and by_another.json()["current_status"] == "signed"
    note = await stack.dispatch.post(f"{url}/progress", json={"unit_code": "DEPT-EE", "note": "已约谈施工方"})
    assert note.json()["status"] == "in_progress"
    done = await stack.dispatch.post(
        f"{url}/complete",
        json={"unit_code": "DEPT-EE", "result_type": "resolved", "result": "已责令停止夜间施工"},
    )
    assert done.json()["status"] == "completed"
    result = done.json()["result"]
    assert (result["result_type"], result["result"]) == ("resolved", "已责令停止夜间施工")
    assert [(c["unit_code"], c["status"]) for c in result["cooperation"]] == [("DEPT-HC", "assigned")]


async def test_a_returned_case_waits_for_a_person_who_reroutes_it(stack: Stack) -> None:
    case = await dispatched(stack, source="hotline", external_id="h3", content="小区物业不作为，电梯坏了一个月")
    url = f"/v1/cases/{case['id']}"
    returned = await stack.dispatch.post(
        f"{url}/return", json={"unit_code": "DEPT-HC", "reason": "电梯属特种设备，归市场监管"}
    )
    assert returned.json()["status"] == "returned"
    queue = (await stack.dispatch.get("/v1/triage")).json()
    assert [c["id"] for c in queue["items"]] == [case["id"]]
    rejudged = await stack.dispatch.post(f"{url}/judge", json={"kind_code": "K0301", "primary_unit": "DEPT-MR"})
    assert rejudged.status_code == 200
    assert (rejudged.json()["status"], rejudged.json()["primary_unit"]) == ("dispatched", "DEPT-MR")
    assert (await stack.dispatch.get("/v1/triage")).json()["total"] == 0
    examples = (await stack.dispatch.get("/v1/labelled-examples")).text.splitlines()
    assert examples[0] == "id,subject,detail,label,machine_label,reason,decided_by,decided_at"
    assert ",小区物业不作为，电梯坏了一个月,K0301,K0301,return,centre," in examples[1]
    bad = await stack.dispatch.post(f"{url}/judge", json={"kind_code": "K0301"})
    assert bad.status_code == 409


async def test_the_trail_verifies_and_any_edit_to_it_is_detected(stack: Stack, tmp_path: Path) -> None:
    case = await dispatched(stack, source="hotline", external_id="h4", content="公司拖欠三个月工资不发")
    await stack.dispatch.post(f"/v1/cases/{case['id']}/sign", json={"unit_code": "DEPT-HRSS"})
    timeline = (await stack.dispatch.get(f"/v1/cases/{case['id']}/timeline")).json()
    assert timeline["verified"] is True and len(timeline["entries"]) == 4

    def tamper() -> None:
        with sqlite3.connect(tmp_path / "dispatch.db") as db:
            db.execute("update case_trail set actor = 'unit:SOMEONE-ELSE' where action = 'sign'")

    # In a thread: the services share this event loop and must be free to finish their own transactions.
    await asyncio.to_thread(tamper)
    tampered = (await stack.dispatch.get(f"/v1/cases/{case['id']}/timeline")).json()
    assert tampered["verified"] is False
    assert tampered["first_broken_seq"] == timeline["entries"][3]["seq"]


async def test_cases_can_be_listed_by_filter_and_page(stack: Stack) -> None:
    for n, text in enumerate(["路灯坏了不亮", "路灯一直不亮很危险", "工资被拖欠了"]):
        await dispatched(stack, source="hotline", external_id=f"l{n}", content=text)
    lights = (await stack.dispatch.get("/v1/cases", params={"unit": "DEPT-UM", "limit": 1})).json()
    assert lights["total"] == 2 and len(lights["items"]) == 1
    second = (await stack.dispatch.get("/v1/cases", params={"unit": "DEPT-UM", "limit": 1, "offset": 1})).json()
    assert second["items"][0]["id"] != lights["items"][0]["id"]
    by_status = (await stack.dispatch.get("/v1/cases", params={"status": ["dispatched"]})).json()
    assert by_status["total"] == 3
    bad = await stack.dispatch.get("/v1/cases", params={"status": "lost"})
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "status"


async def test_the_guide_in_force_is_served(stack: Stack) -> None:
    guide = (await stack.dispatch.get("/v1/guide")).json()
    assert guide["version"].startswith("seed")
    assert guide["counts"]["kinds"] == sum(len(c["kinds"]) for c in guide["categories"])
    assert any(u["code"] == "ST-110199001" for u in guide["units"])


async def test_duplicates_merge_onto_the_first_case_and_both_show_it(stack: Stack) -> None:
    first = await dispatched(
        stack,
        source="hotline",
        external_id="m1",
        content="路口的路灯坏了不亮",
        location={"lat": 39.9100, "lon": 116.3100},
    )
    near = await stack.report(
        source="grid", external_id="m2", content="这里路灯不亮，晚上很黑", location={"lat": 39.9105, "lon": 116.3105}
    )
    merged = await stack.case_in(str(near["id"]), "merged")
    assert merged["merged_into"] == first["id"]
    assert "m away" in merged["judge_reasons"][-1]
    caller = {"name": "王五", "phone": "13700001234"}
    again = await dispatched(stack, source="hotline", external_id="m3", content="路灯又坏了", reporter=caller)
    repeat = await stack.report(source="hotline", external_id="m4", content="我之前反映的路灯还是不亮", reporter=caller)
    assert (await stack.case_in(str(repeat["id"]), "merged"))["merged_into"] == again["id"]
    other_kind = await dispatched(
        stack,
        source="hotline",
        external_id="m5",
        content="路口有人摆摊占道经营",
        location={"lat": 39.9101, "lon": 116.3101},
    )
    assert other_kind["merged_into"] is None
    original = (await stack.dispatch.get(f"/v1/cases/{first['id']}")).json()
    assert original["merged_cases"] == [near["id"]]
    assert original["status"] == "dispatched" and original["timeline"][-1]["action"] == "absorb"
    await stack.report_in(str(near["id"]), "merged")


async def test_an_out_of_scope_request_is_refused(stack: Stack) -> None:
    accepted = await stack.report(source="hotline", external_id="o1", content="朋友借钱不还，你们帮我要回来")
    refused = await stack.case_in(str(accepted["id"]), "refused")
    assert refused["decision"] == "refuse" and "民事纠纷" in refused["judge_reasons"][0]

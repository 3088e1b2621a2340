"""Call-backs through the whole stack: who may answer, answers that are not the unit's fault, unreachable people."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.stack import Stack, embedded_stack


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    async with embedded_stack(tmp_path, callback_max_attempts=2) as running_stack:
        yield running_stack


async def completed_case(stack: Stack, **report: Any) -> tuple[str, str]:
    """Report, sign and complete a case; return its id and unit once evaluation awaits the call-back."""
    case_id = str((await stack.report(**report))["id"])
    case = await stack.case_in(case_id, "dispatched")
    unit = str(case["primary_unit"])
    assert (await stack.dispatch.post(f"/v1/cases/{case_id}/sign", json={"unit_code": unit})).status_code == 200
    done = await stack.dispatch.post(f"/v1/cases/{case_id}/complete", json={"unit_code": unit, "result": "已处理"})
    assert done.status_code == 200, done.text
    await stack.awaiting_feedback(case_id)
    return case_id, unit


async def metrics_of(stack: Stack, unit: str) -> dict[str, Any]:
    page = (await stack.evaluation.get("/v1/metrics", params={"unit": unit, "grouping": "all"})).json()
    [row] = page["items"]
    result: dict[str, Any] = row
    return result


async def test_a_grid_report_is_confirmed_by_the_grid_worker_not_by_a_citizen(stack: Stack) -> None:
    case_id, _unit = await completed_case(
        stack, source="grid", external_id="g1", content="垃圾桶满了没人清理", grid_code="11019900100101"
    )
    citizen = await stack.evaluation.post(
        "/v1/feedback",
        json={"case_id": case_id, "respondent": "citizen", "resolved": True, "satisfaction": "satisfied"},
    )
    assert citizen.status_code == 403
    problem = citizen.json()
    assert problem["errors"][0]["field"] == "respondent" and problem["allowed"] == ["grid_worker"]
    assert "grid_worker" in problem["detail"]
    view = (await stack.evaluation.get(f"/v1/evaluations/{case_id}")).json()
    assert view["allowed_respondents"] == ["grid_worker"] and view["awaiting_feedback"]
    worker = await stack.evaluation.post(
        "/v1/feedback",
        json={"case_id": case_id, "respondent": "grid_worker", "resolved": True, "satisfaction": "satisfied"},
    )
    assert worker.status_code == 201 and worker.json()["respondent"] == "grid_worker"
    await stack.case_in(case_id, "closed")


async def test_a_town_report_is_answered_by_the_town_by_default(stack: Stack) -> None:
    case_id, _unit = await completed_case(
        stack,
        source="town",
        external_id="t1",
        content="辖区内餐馆油烟扰民，街道无执法权，请生态环境局到场处置",
        grid_code="11019900200101",
        requested_departments=["DEPT-HC"],
    )
    answer = await stack.evaluation.post(
        "/v1/feedback", json={"case_id": case_id, "resolved": True, "satisfaction": "satisfied"}
    )
    assert answer.status_code == 201 and answer.json()["respondent"] == "town"


async def test_dissatisfaction_that_is_not_the_units_fault_closes_without_counting(stack: Stack) -> None:
    case_id, unit = await completed_case(stack, source="hotline", external_id="n1", content="路灯坏了一直不亮")
    bare = await stack.evaluation.post(
        "/v1/feedback",
        json={"case_id": case_id, "resolved": False, "satisfaction": "dissatisfied", "fault": "not_unit"},
    )
    assert bare.status_code == 422 and "fault_reason" in bare.text
    content = await stack.evaluation.post(
        "/v1/feedback",
        json={
            "case_id": case_id,
            "resolved": True,
            "satisfaction": "satisfied",
            "fault": "not_unit",
            "fault_reason": "x",
        },
    )
    assert content.status_code == 422
    answer = await stack.evaluation.post(
        "/v1/feedback",
        json={
            "case_id": case_id,
            "resolved": False,
            "satisfaction": "dissatisfied",
            "fault": "not_unit",
            "fault_reason": "要求拆除合法建筑，法律不支持",
        },
    )
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert (body["verdict"], body["counted"], body["fault"]) == ("closed", False, "not_unit")
    await stack.case_in(case_id, "closed")
    row = await metrics_of(stack, unit)
    assert (row["feedback"], row["callbacks_counted"], row["not_unit_fault"], row["closed"]) == (1, 0, 1, 1)
    assert row["satisfaction_rate"] == {"value": None, "numerator": 0, "denominator": 0}
    view = (await stack.evaluation.get(f"/v1/evaluations/{case_id}")).json()
    assert view["outcome"] == "closed_not_unit_fault"
    assert {item["rule"] for item in view["score"]["items"]} == {"signed_on_time", "completed_on_time"}
    assert view["score"]["score"] == 100.0


async def test_after_the_allowed_attempts_an_unreachable_case_closes_and_is_not_counted(stack: Stack) -> None:
    case_id, unit = await completed_case(stack, source="hotline", external_id="u1", content="路灯坏了一直不亮")
    first = await stack.evaluation.post("/v1/callback-attempts", json={"case_id": case_id, "note": "无人接听"})
    assert first.status_code == 201
    assert first.json() | {"feedback": None} == {
        "case_id": case_id,
        "round": 0,
        "attempts": 1,
        "attempts_allowed": 2,
        "verdict": None,
        "feedback": None,
    }
    second = (await stack.evaluation.post("/v1/callback-attempts", json={"case_id": case_id, "note": "关机"})).json()
    assert second["verdict"] == "closed" and second["feedback"]["outcome"] == "unreachable"
    assert second["feedback"]["counted"] is False and second["feedback"]["attempts"] == 2
    await stack.case_in(case_id, "closed")
    late = await stack.evaluation.post(
        "/v1/feedback", json={"case_id": case_id, "resolved": True, "satisfaction": "satisfied"}
    )
    assert late.status_code == 409
    row = await metrics_of(stack, unit)
    assert (row["feedback"], row["unreachable"], row["closed"]) == (0, 1, 1)
    assert row["satisfaction_rate"]["denominator"] == 0
    view = (await stack.evaluation.get(f"/v1/evaluations/{case_id}")).json()
    assert view["outcome"] == "closed_unreachable" and view["callback_attempts"] == 2

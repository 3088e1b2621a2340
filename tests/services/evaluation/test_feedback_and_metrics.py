"""Call-backs close or reopen cases; the three rates count what happened; repeated problems become hot spots."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import eventually
from tests.stack import Stack, embedded_stack


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    async with embedded_stack(tmp_path) as running_stack:
        yield running_stack


async def handled(stack: Stack, case_id: str, unit: str) -> None:
    await stack.case_in(case_id, "dispatched", "reopened")
    assert (await stack.dispatch.post(f"/v1/cases/{case_id}/sign", json={"unit_code": unit})).status_code == 200
    done = await stack.dispatch.post(f"/v1/cases/{case_id}/complete", json={"unit_code": unit, "result": "已处理"})
    assert done.status_code == 200
    await stack.awaiting_feedback(case_id)


async def test_dissatisfied_reopens_then_satisfied_closes_and_the_rates_count_both(stack: Stack) -> None:
    case_id = str((await stack.report(source="hotline", external_id="f1", content="路灯坏了一直不亮"))["id"])
    early = await stack.evaluation.post(
        "/v1/feedback", json={"case_id": case_id, "resolved": True, "satisfaction": "satisfied"}
    )
    assert early.status_code in (404, 409)
    await handled(stack, case_id, "DEPT-UM")
    unhappy = await stack.evaluation.post(
        "/v1/feedback",
        json={"case_id": case_id, "resolved": False, "satisfaction": "dissatisfied", "comment": "还是不亮"},
    )
    assert unhappy.status_code == 201 and unhappy.json()["verdict"] == "reopened"
    again = await stack.evaluation.post(
        "/v1/feedback", json={"case_id": case_id, "resolved": True, "satisfaction": "satisfied"}
    )
    assert again.status_code == 409
    reopened = await stack.case_in(case_id, "reopened")
    assert reopened["reopen_count"] == 1
    await handled(stack, case_id, "DEPT-UM")
    happy = await stack.evaluation.post(
        "/v1/feedback", json={"case_id": case_id, "resolved": True, "satisfaction": "basically_satisfied"}
    )
    assert happy.json() | {"recorded_at": None} == {
        "case_id": case_id,
        "round": 1,
        "respondent": "citizen",
        "outcome": "answered",
        "resolved": True,
        "satisfaction": "basically_satisfied",
        "fault": None,
        "fault_reason": None,
        "counted": True,
        "attempts": 0,
        "comment": None,
        "verdict": "closed",
        "recorded_at": None,
    }
    await stack.case_in(case_id, "closed")
    await stack.report_in(case_id, "closed")
    metrics = (await stack.evaluation.get("/v1/metrics", params={"unit": "DEPT-UM", "grouping": "all"})).json()
    [row] = metrics["items"]
    assert (row["dispatched"], row["signed"], row["completed"], row["feedback"], row["reopened"]) == (
        1,
        1,
        1,
        2,
        1,
    )
    assert row["response_rate"] == {"value": 1.0, "numerator": 1, "denominator": 1}
    assert row["resolution_rate"] == {"value": 0.5, "numerator": 1, "denominator": 2}
    assert row["satisfaction_rate"] == {"value": 0.5, "numerator": 1, "denominator": 2}
    assert row["reopen_rate"] == {"value": 0.5, "numerator": 1, "denominator": 2}
    assert "响应率" in metrics["definitions"]["response_rate"]["name"]
    assert metrics["definitions"]["satisfaction_rate"]["denominator"].startswith("call-back answers that count")
    evaluation = (await stack.evaluation.get(f"/v1/evaluations/{case_id}")).json()
    score = evaluation["score"]
    assert score["final"] and evaluation["outcome"] == "closed" and not evaluation["awaiting_feedback"]
    rules = {item["rule"]: item["points"] for item in score["items"]}
    assert rules == {"signed_on_time": 10, "completed_on_time": 20, "resolved": 30, "satisfied": 30, "reopened": -10}
    assert score["score"] == 80.0  # 90 of 100 assessable points, less 10 for the reopened round
    assert row["case_score"] == {"mean": 80.0, "cases": 1}


async def test_feedback_for_an_unknown_case_names_the_field(stack: Stack) -> None:
    answer = await stack.evaluation.post(
        "/v1/feedback", json={"case_id": "nope", "resolved": True, "satisfaction": "satisfied"}
    )
    assert answer.status_code == 404 and answer.json()["errors"][0]["field"] == "case_id"
    bad = await stack.evaluation.post("/v1/feedback", json={"case_id": "x", "resolved": True, "satisfaction": "meh"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "satisfaction"


async def test_repeated_reports_of_one_problem_in_one_grid_are_a_hot_spot(stack: Stack) -> None:
    ids = []
    for n, text in enumerate(["垃圾桶三天没人清理了", "垃圾站的垃圾堆成山没人拉走", "楼下垃圾满了溢出来，很臭"]):
        accepted = await stack.report(source="grid", external_id=f"hs{n}", content=text, grid_code="11019900100101")
        ids.append(str(accepted["id"]))
    other = await stack.report(
        source="hotline", external_id="hs-other", content="路灯不亮了", grid_code="11019900100101"
    )
    for case_id in [*ids, str(other["id"])]:
        await stack.case_in(case_id, "dispatched")

    async def hot() -> list[dict[str, Any]] | None:
        items: list[dict[str, Any]] = (await stack.evaluation.get("/v1/hotspots")).json()["items"]
        return items or None

    [spot] = await eventually(hot, what="a hot spot")
    assert (spot["kind_code"], spot["place_code"], spot["reports"]) == ("K0202", "11019900100101", 3)
    assert sorted(spot["case_ids"]) == sorted(ids)
    assert spot["sources"] == {"grid": 3} and spot["heat"]["reports"] == 3

"""Object-level rules through the running services: a unit its own cases, a grid worker its grids, a town its
territory; each refusal audited."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from shared.auth import Role
from tests.helpers import credential
from tests.stack import Stack, embedded_stack

WEST_GRID = "11019900200101"  # 西河街道 (street 110199002)
EAST_GRID = "11019900100101"  # street 110199001


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    async with embedded_stack(tmp_path, timers=False) as running_stack:
        yield running_stack


async def key(
    stack: Stack,
    role: Role,
    *,
    units: list[str] | None = None,
    grids: list[str] | None = None,
    streets: list[str] | None = None,
) -> dict[str, str]:
    """Headers of a new key in the stack's one credential store."""
    return await credential(stack.apps["dispatch"], role, units=units, grids=grids, streets=streets)


def grid_report(grid_code: str, **extra: Any) -> dict[str, Any]:
    return {
        "source": "grid",
        "external_id": uuid.uuid4().hex,
        "content": "小区垃圾桶满溢三天没人清运",
        "grid_code": grid_code,
        "kind_code": "K0202",
    } | extra


async def dispatched_case(stack: Stack, grid_code: str) -> dict[str, Any]:
    accepted = await stack.report(**grid_report(grid_code))
    return await stack.case_in(accepted["id"], "dispatched")


async def denials(stack: Stack, credential_id: str) -> list[dict[str, Any]]:
    page = await stack.dispatch.get("/v1/audit", params={"credential_id": credential_id, "outcome": "denied"})
    assert page.status_code == 200, page.text
    items: list[dict[str, Any]] = page.json()["items"]
    return items


def key_id(headers: dict[str, str]) -> str:
    return headers["Authorization"].split("_")[1]


async def test_a_unit_sees_and_acts_on_its_own_cases_only(stack: Stack) -> None:
    case = await dispatched_case(stack, WEST_GRID)
    owner = await key(stack, "unit", units=[case["primary_unit"]])
    other = await key(stack, "unit", units=["DEPT-OTHER"])

    assert (await stack.dispatch.get(f"/v1/cases/{case['id']}", headers=owner)).status_code == 200
    hidden = await stack.dispatch.get(f"/v1/cases/{case['id']}", headers=other)
    assert hidden.status_code == 404 and hidden.json()["detail"] == f"no case {case['id']}"
    assert (await stack.dispatch.get(f"/v1/cases/{case['id']}/timeline", headers=other)).status_code == 404
    mine = (await stack.dispatch.get("/v1/cases", headers=owner)).json()
    theirs = (await stack.dispatch.get("/v1/cases", headers=other)).json()
    assert [c["id"] for c in mine["items"]] == [case["id"]] and mine["total"] == 1
    assert theirs == {"items": [], "total": 0, "limit": 50, "offset": 0}

    as_owner = await stack.dispatch.post(
        f"/v1/cases/{case['id']}/sign", json={"unit_code": case["primary_unit"]}, headers=other
    )
    assert as_owner.status_code == 403 and as_owner.json()["errors"][0]["field"] == "unit_code"
    as_itself = await stack.dispatch.post(
        f"/v1/cases/{case['id']}/sign", json={"unit_code": "DEPT-OTHER"}, headers=other
    )
    assert as_itself.status_code == 403
    assert (await stack.dispatch.get(f"/v1/cases/{case['id']}")).json()["status"] == "dispatched"

    signed = await stack.dispatch.post(
        f"/v1/cases/{case['id']}/sign", json={"unit_code": case["primary_unit"]}, headers=owner
    )
    assert signed.status_code == 200 and signed.json()["status"] == "signed"
    refused = await denials(stack, key_id(other))
    assert {(r["status"], r["path"]) for r in refused} >= {
        (404, f"/v1/cases/{case['id']}"),
        (403, f"/v1/cases/{case['id']}/sign"),
    }
    assert all(r["role"] == "unit" and r["service"] == "dispatch" for r in refused)


async def test_staff_acts_for_any_unit(stack: Stack) -> None:
    case = await dispatched_case(stack, WEST_GRID)
    staff = await key(stack, "staff")
    signed = await stack.dispatch.post(
        f"/v1/cases/{case['id']}/sign", json={"unit_code": case["primary_unit"]}, headers=staff
    )
    assert signed.status_code == 200 and signed.json()["status"] == "signed"


async def test_a_grid_worker_reports_only_from_its_grids_and_as_a_grid(stack: Stack) -> None:
    worker = await key(stack, "grid", grids=[WEST_GRID])
    outside = grid_report(EAST_GRID)
    refused = await stack.intake.post("/v1/reports", json=outside, headers=worker)
    assert refused.status_code == 403 and refused.json()["errors"][0]["field"] == "grid_code"
    as_hotline = await stack.intake.post("/v1/reports", json=grid_report(WEST_GRID, source="hotline"), headers=worker)
    assert as_hotline.status_code == 403 and as_hotline.json()["errors"][0]["field"] == "source"
    batch = {"reports": [grid_report(WEST_GRID), grid_report(EAST_GRID)]}
    in_batch = await stack.intake.post("/v1/reports/batch", json=batch, headers=worker)
    assert in_batch.status_code == 403 and in_batch.json()["errors"][0]["field"] == "reports.1.grid_code"
    # Nothing was stored: the same reports are new to an admin.
    assert (await stack.intake.post("/v1/reports", json=outside)).status_code == 201
    assert (await stack.intake.post("/v1/reports/batch", json=batch)).json()["accepted"] == 2
    inside = await stack.intake.post("/v1/reports", json=grid_report(WEST_GRID), headers=worker)
    assert inside.status_code == 201
    assert len(await denials(stack, key_id(worker))) == 3


async def test_a_town_reports_sees_and_rates_only_in_its_territory(stack: Stack) -> None:
    town = await key(stack, "town", streets=["110199002"])
    theirs = await dispatched_case(stack, EAST_GRID)

    def town_report(grid_code: str) -> dict[str, Any]:
        return grid_report(grid_code, source="town", kind_code=None, requested_departments=["DEPT-EE"])

    outside = await stack.intake.post("/v1/reports", json=town_report(EAST_GRID), headers=town)
    assert outside.status_code == 403 and outside.json()["errors"][0]["field"] == "address"
    inside = await stack.intake.post("/v1/reports", json=town_report(WEST_GRID), headers=town)
    assert inside.status_code == 201
    ours = await stack.case_in(inside.json()["id"], "dispatched")

    assert (await stack.dispatch.get(f"/v1/cases/{ours['id']}", headers=town)).status_code == 200
    assert (await stack.dispatch.get(f"/v1/cases/{theirs['id']}", headers=town)).status_code == 404
    listed = (await stack.dispatch.get("/v1/cases", headers=town, params={"limit": 500})).json()["items"]
    assert ours["id"] in {c["id"] for c in listed} and theirs["id"] not in {c["id"] for c in listed}
    assert {c["territory"]["codes"]["street"] for c in listed} == {"110199002"}

    rating = {"unit_code": "DEPT-EE", "score": 5}
    foreign = await stack.dispatch.post(f"/v1/cases/{theirs['id']}/ratings", json=rating, headers=town)
    assert foreign.status_code == 403 and foreign.json()["errors"][0]["field"] == "case_id"
    escalation = {"actor": "town:110199002", "reason": "不归我们"}
    escalated = await stack.dispatch.post(f"/v1/cases/{theirs['id']}/dispute/escalate", json=escalation, headers=town)
    assert escalated.status_code == 403
    # In its territory the request passes to the case's own rules: the called department has not checked in yet.
    own = await stack.dispatch.post(f"/v1/cases/{ours['id']}/ratings", json=rating, headers=town)
    assert own.status_code == 409 and "never checked in" in own.json()["detail"]


async def test_reading_a_reporter_is_audited(stack: Stack) -> None:
    hotline = await key(stack, "hotline")
    accepted = await stack.report(
        source="hotline",
        external_id=uuid.uuid4().hex,
        content="幸福路的路灯坏了",
        address="幸福路12号",
        reporter={"name": "李四", "phone": "13900001111"},
    )
    assert (await stack.intake.get(f"/v1/reports/{accepted['id']}", headers=hotline)).status_code == 200
    page = await stack.dispatch.get("/v1/audit", params={"credential_id": key_id(hotline), "outcome": "allowed"})
    [row] = page.json()["items"]
    assert (row["action"], row["path"], row["role"], row["service"]) == (
        "reports:read-reporter",
        f"/v1/reports/{accepted['id']}",
        "hotline",
        "intake",
    )
    assert row["detail"] == {"report_id": accepted["id"]}


async def test_a_hotline_key_may_not_read_the_audit_log(stack: Stack) -> None:
    hotline = await key(stack, "hotline")
    answer = await stack.dispatch.get("/v1/audit", headers=hotline)
    assert answer.status_code == 403
    assert answer.json()["detail"] == "the hotline role may not do this (audit:read)"


async def completed_case(stack: Stack, grid_code: str) -> dict[str, Any]:
    """A grid report, signed and completed by its unit, waiting for its confirmation (回访)."""
    case = await dispatched_case(stack, grid_code)
    for action, body in (("sign", {}), ("complete", {"result": "已安排清运，垃圾桶已清空"})):
        done = await stack.dispatch.post(
            f"/v1/cases/{case['id']}/{action}", json={"unit_code": case["primary_unit"]} | body
        )
        assert done.status_code == 200, done.text
    await stack.awaiting_feedback(case["id"])
    return case


async def test_a_grid_worker_confirms_only_reports_from_its_grids(stack: Stack) -> None:
    mine = await completed_case(stack, WEST_GRID)
    theirs = await completed_case(stack, EAST_GRID)
    worker = await key(stack, "grid", grids=[WEST_GRID])
    hotline = await key(stack, "hotline")
    answer = {"resolved": True, "satisfaction": "satisfied", "respondent": "grid_worker"}

    outside = await stack.evaluation.post("/v1/feedback", json=answer | {"case_id": theirs["id"]}, headers=worker)
    assert outside.status_code == 403 and outside.json()["errors"][0]["field"] == "case_id"
    attempt = {"case_id": theirs["id"], "respondent": "grid_worker", "note": "无人接听"}
    assert (await stack.evaluation.post("/v1/callback-attempts", json=attempt, headers=worker)).status_code == 403
    posing = await stack.evaluation.post("/v1/feedback", json=answer | {"case_id": mine["id"]}, headers=hotline)
    assert posing.status_code == 403 and "answers as citizen" in posing.json()["detail"]
    # Nothing was recorded for the refused answers: the other grid's case still waits for its confirmation.
    assert (await stack.evaluation.get(f"/v1/evaluations/{theirs['id']}")).json()["awaiting_feedback"] is True
    assert len(await denials(stack, key_id(worker))) == 2

    confirmed = await stack.evaluation.post("/v1/feedback", json=answer | {"case_id": mine["id"]}, headers=worker)
    assert confirmed.status_code == 201 and confirmed.json()["verdict"] == "closed"

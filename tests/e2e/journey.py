"""One report from each source driven through all five steps against live services over HTTP."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx

from tests.e2e.procs import auth_headers
from tests.helpers import eventually

REPORTS: list[dict[str, Any]] = [
    {
        "source": "hotline",
        "content": "幸福路上的路灯一直不亮，晚上走路很危险",
        "address": "东城街道幸福路",
        "reporter": {"name": "李四", "phone": "13900001111"},
    },
    {
        "source": "grid",
        "content": "小区垃圾桶满溢三天没人清运",
        "grid_code": "11019900200101",
        "kind_code": "K0202",
        "location": {"lat": 39.91, "lon": 116.36},
        "attachments": ["https://example.org/photo/1.jpg"],
    },
    {
        "source": "town",
        "content": "辖区工地夜间施工噪声扰民，需要生态环境和住建部门到场",
        "address": "西河大街",
        "requested_departments": ["DEPT-EE", "DEPT-HC"],
    },
]


async def _get(client: httpx.AsyncClient, url: str) -> dict[str, Any]:
    answer = await client.get(url)
    body: dict[str, Any] = answer.json()
    return body if answer.status_code == 200 else {}


async def drive_to_closed(
    intake: str, dispatch: str, evaluation: str, *, timeout: float = 60.0
) -> list[dict[str, Any]]:
    """Post one report per source; sign, complete, call back; return the closed cases."""
    async with httpx.AsyncClient(timeout=10, headers=auth_headers()) as http:
        accepted = []
        for report in REPORTS:
            answer = await http.post(f"{intake}/v1/reports", json=report | {"external_id": uuid.uuid4().hex})
            assert answer.status_code == 201, answer.text
            accepted.append(answer.json())

        async def close(case_id: str) -> dict[str, Any]:
            async def dispatched() -> dict[str, Any] | None:
                case = await _get(http, f"{dispatch}/v1/cases/{case_id}")
                return case if case.get("status") == "dispatched" else None

            case = await eventually(dispatched, timeout=timeout, what=f"{case_id} dispatched")
            unit = case["primary_unit"]
            signed = await http.post(f"{dispatch}/v1/cases/{case_id}/sign", json={"unit_code": unit})
            assert signed.status_code == 200, signed.text
            done = await http.post(
                f"{dispatch}/v1/cases/{case_id}/complete",
                json={"unit_code": unit, "result": "已到场处置完毕"},
            )
            assert done.status_code == 200, done.text

            async def awaiting() -> dict[str, Any] | None:
                seen = await _get(http, f"{evaluation}/v1/evaluations/{case_id}")
                return seen if seen.get("awaiting_feedback") else None

            await eventually(awaiting, timeout=timeout, what=f"{case_id} awaiting feedback")
            feedback = await http.post(
                f"{evaluation}/v1/feedback",
                json={"case_id": case_id, "resolved": True, "satisfaction": "satisfied"},
            )
            assert feedback.status_code == 201, feedback.text

            async def closed() -> dict[str, Any] | None:
                case = await _get(http, f"{dispatch}/v1/cases/{case_id}")
                report = await _get(http, f"{intake}/v1/reports/{case_id}")
                return case if case.get("status") == "closed" and report.get("status") == "closed" else None

            return await eventually(closed, timeout=timeout, what=f"{case_id} closed in dispatch and intake")

        return list(await asyncio.gather(*(close(a["id"]) for a in accepted)))


def check_closed(cases: list[dict[str, Any]]) -> None:
    """What a user checks after the journey."""
    assert [c["source"] for c in cases] == ["hotline", "grid", "town"]
    assert [c["primary_unit"] for c in cases] == ["DEPT-UM", "ST-110199002", "DEPT-EE"]
    assert cases[2]["cooperating_units"] == ["DEPT-HC"]
    for case in cases:
        actions = [entry["action"] for entry in case["timeline"]]
        assert actions == ["receive", "judge", "dispatch", "sign", "complete", "call_back", "close"], actions

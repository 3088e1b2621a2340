"""The AsyncAPI document is generated from the code, valid AsyncAPI 3.0, and true to every event we emit."""

from __future__ import annotations

import json
import os
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft7Validator

from services.dispatch import timers
from shared.asyncapi import render
from shared.contracts import payload_model
from shared.events import utcnow
from tests.stack import embedded_stack

ROOT = Path(__file__).resolve().parents[2]


def test_the_committed_document_matches_the_code() -> None:
    committed = (ROOT / "docs" / "asyncapi.json").read_text(encoding="utf-8")
    assert committed == render(), "docs/asyncapi.json is stale: run `jiesu asyncapi --out docs/asyncapi.json`"


def test_the_document_is_valid_asyncapi_3() -> None:
    path = os.environ.get("JIESU_TEST_ASYNCAPI_SCHEMA")
    if not path:
        pytest.fail(
            "JIESU_TEST_ASYNCAPI_SCHEMA is unset; run scripts/asyncapi-schema.sh (make test does)", pytrace=False
        )
    validator = Draft7Validator(json.loads(Path(path).read_text(encoding="utf-8")))
    document = json.loads(render())
    assert [e.message for e in validator.iter_errors(document)] == []
    broken = document | {"channels": {"Reports": {"address": 5}}}
    assert list(validator.iter_errors(broken)), "the validator must notice a broken document"


async def test_every_event_emitted_is_declared_and_matches_its_schema(tmp_path: Path) -> None:
    async with embedded_stack(tmp_path, timers=False) as stack:
        post = stack.dispatch.post
        hotline = await stack.report(
            source="hotline", external_id="a1", content="路灯坏了不亮", reporter={"phone": "13800001111"}
        )
        town = await stack.report(
            source="town",
            external_id="a2",
            content="工地夜间施工噪声扰民",
            address="西河大街",
            requested_departments=["DEPT-HC"],
        )
        await stack.report(source="hotline", external_id="a3", content="楼道里煤气味很重")
        await stack.report(source="hotline", external_id="a4", content="朋友借钱不还")
        for report in (hotline, town):
            await stack.case_in(report["id"], "dispatched")
        h, t = f"/v1/cases/{hotline['id']}", f"/v1/cases/{town['id']}"
        await post(f"{h}/sign", json={"unit_code": "DEPT-UM"})
        await post(f"{h}/extension", json={"unit_code": "DEPT-UM", "working_days": 2, "reason": "等待配件"})
        await post(f"{h}/extension/decision", json={"granted": True})
        await post(f"{h}/complete", json={"unit_code": "DEPT-UM", "result": "已修复"})
        await stack.awaiting_feedback(hotline["id"])
        await stack.evaluation.post(
            "/v1/feedback", json={"case_id": hotline["id"], "resolved": True, "satisfaction": "dissatisfied"}
        )
        await stack.case_in(hotline["id"], "reopened")
        await post(f"{t}/checkin", json={"unit_code": "DEPT-HC"})
        await post(f"{t}/tasks/report", json={"unit_code": "DEPT-HC", "report": "到场核查"})
        await post(f"{t}/ratings", json={"unit_code": "DEPT-HC", "score": 5})
        await post(f"{t}/return", json={"unit_code": "DEPT-EE", "reason": "不属本部门"})
        app = stack.apps["dispatch"]
        await timers.fire_due(app.state.runtime.sessions, app.state.dispatch, now=utcnow() + timedelta(days=30))
    seen: dict[str, int] = {}
    for database in ("intake", "dispatch", "evaluation"):
        with sqlite3.connect(tmp_path / f"{database}.db") as db:
            for event_type, payload in db.execute("select type, payload from outbox"):
                model = payload_model(event_type)
                assert model is not None, f"{event_type} is emitted but not declared in shared/contracts.py"
                data: dict[str, Any] = json.loads(payload)
                model.model_validate(data)
                seen[event_type] = seen.get(event_type, 0) + 1
    assert len(seen) >= 15, sorted(seen)

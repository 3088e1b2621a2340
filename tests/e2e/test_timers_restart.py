"""Deadline timers survive a kill -9 of the process: none is lost, none fires twice."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from pathlib import Path

import httpx

from shared.guide import SEED_GUIDE
from tests.e2e.procs import Proc, auth_headers, free_port, processes, wait_ready
from tests.helpers import eventually

SECONDS = 1 / 3600


def fast_guide(path: Path) -> Path:
    """The seed guide with time limits of seconds, so deadlines pass during the test."""
    guide = json.loads(SEED_GUIDE.read_text(encoding="utf-8"))
    for kind in guide["kinds"]:
        for urgency in kind["time_limits"]:
            kind["time_limits"][urgency] = {"sign_hours": 4 * SECONDS, "complete_hours": 8 * SECONDS}
    path.write_text(json.dumps(guide, ensure_ascii=False), encoding="utf-8")
    return path


async def test_timers_due_while_the_process_was_dead_fire_once_after_restart(tmp_path: Path) -> None:
    ports = [free_port() for _ in range(3)]
    intake, dispatch = (f"http://127.0.0.1:{p}" for p in ports[:2])
    env = {
        "JIESU_DISPATCH_GUIDE_PATH": str(fast_guide(tmp_path / "guide.json")),
        "JIESU_DISPATCH_TIMER_POLL_SECONDS": "0.2",
        "JIESU_DISPATCH_URGE_AFTER_HOURS": str(2 * SECONDS),
    }
    args = ["up", "--var", str(tmp_path), "--ports", *map(str, ports)]
    first = Proc(args, log=tmp_path / "first.log", env=env)
    with processes(first):
        for url in (intake, dispatch):
            wait_ready(url, proc=first)
        async with httpx.AsyncClient(timeout=10, headers=auth_headers()) as http:
            body = {"source": "hotline", "external_id": uuid.uuid4().hex, "content": "路灯坏了一直不亮"}
            case_id = (await http.post(f"{intake}/v1/reports", json=body)).json()["id"]

            async def dispatched() -> bool:
                answer = await http.get(f"{dispatch}/v1/cases/{case_id}")
                return answer.status_code == 200 and answer.json()["status"] == "dispatched"

            await eventually(dispatched, what="the case to be dispatched")
        first.kill()
    await asyncio.sleep(9)  # every sign and completion deadline passes while nothing runs

    async def timer_actions(http: httpx.AsyncClient) -> Counter[tuple[str, str]]:
        entries = (await http.get(f"{dispatch}/v1/cases/{case_id}/timeline")).json()["entries"]
        return Counter((e["action"], e["detail"]["deadline"]) for e in entries if e["actor"] == "system:timer")

    expected = Counter(
        {
            ("warn", "sign"): 1,
            ("overdue", "sign"): 1,
            ("warn", "complete"): 1,
            ("overdue", "complete"): 1,
            ("urge", "complete"): 1,
        }
    )
    second = Proc(args, log=tmp_path / "second.log", env=env)
    with processes(second):
        wait_ready(dispatch, proc=second)
        async with httpx.AsyncClient(timeout=10, headers=auth_headers()) as http:

            async def all_fired() -> Counter[tuple[str, str]] | None:
                seen = await timer_actions(http)
                return seen if seen == expected else None

            await eventually(all_fired, timeout=30, what=f"timers {dict(expected)}")
    third = Proc(args, log=tmp_path / "third.log", env=env)
    with processes(third):
        wait_ready(dispatch, proc=third)
        await asyncio.sleep(2)
        async with httpx.AsyncClient(timeout=10, headers=auth_headers()) as http:
            assert await timer_actions(http) == expected
            assert (await http.get(f"{dispatch}/v1/cases/{case_id}/timeline")).json()["verified"] is True

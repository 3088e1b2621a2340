"""`jiesu up` as a user runs it: one process, SQLite under a folder, the embedded bus."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx

from tests.e2e.journey import check_closed, drive_to_closed
from tests.e2e.procs import Proc, auth_headers, free_port, processes, wait_ready
from tests.helpers import eventually


def up(var: Path) -> tuple[Proc, list[str]]:
    ports = [free_port() for _ in range(3)]
    proc = Proc(["up", "--var", str(var), "--ports", *map(str, ports)], log=var / "up.log", env={})
    return proc, [f"http://127.0.0.1:{p}" for p in ports]


async def test_reports_from_all_three_sources_reach_closed(tmp_path: Path) -> None:
    proc, (intake, dispatch, evaluation) = up(tmp_path)
    with processes(proc):
        for url in (intake, dispatch, evaluation):
            wait_ready(url, proc=proc)
        check_closed(await drive_to_closed(intake, dispatch, evaluation))
        async with httpx.AsyncClient(headers=auth_headers()) as http:
            metrics = (await http.get(f"{evaluation}/v1/metrics", params={"grouping": "all"})).json()
        assert sum(row["feedback"] for row in metrics["items"]) == 3


async def test_reports_accepted_before_a_kill_are_all_dispatched_after_restart(tmp_path: Path) -> None:
    proc, (intake, dispatch, _evaluation) = up(tmp_path)
    accepted: list[str] = []
    with processes(proc):
        wait_ready(intake, proc=proc)
        async with httpx.AsyncClient(timeout=10, headers=auth_headers()) as http:
            for n in range(40):
                answer = await http.post(
                    f"{intake}/v1/reports",
                    json={
                        "source": "hotline",
                        "external_id": uuid.uuid4().hex,
                        "content": f"路灯不亮第{n}处",
                    },
                )
                assert answer.status_code == 201
                accepted.append(answer.json()["id"])
        proc.kill()  # at once after the last 201: some events are still in the outbox or the bus
    again = Proc(proc.args, log=tmp_path / "up-again.log", env={})
    with processes(again):
        wait_ready(dispatch, proc=again)
        async with httpx.AsyncClient(timeout=10, headers=auth_headers()) as http:

            async def all_dispatched() -> int | None:
                page = (await http.get(f"{dispatch}/v1/cases", params={"limit": 500})).json()
                ids = sorted(item["id"] for item in page["items"])
                return len(ids) if ids == sorted(accepted) and page["total"] == len(accepted) else None

            assert await eventually(all_dispatched, timeout=60, what="every accepted report as one case") == 40
            await asyncio.sleep(0.5)
            page = (await http.get(f"{dispatch}/v1/cases", params={"limit": 500})).json()
            assert page["total"] == 40

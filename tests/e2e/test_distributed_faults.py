"""Distributed mode under load: kill -9 dispatch, the relays and evaluation in turn; nothing is lost or doubled."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

from tests.e2e.procs import Proc, auth_headers, free_port, processes, wait_ready
from tests.helpers import eventually


async def test_killing_services_and_relays_under_load_loses_and_doubles_nothing(
    tmp_path: Path, pg_databases: Callable[[], Awaitable[str]], kafka_bootstrap: str, namespace: str
) -> None:
    procs: dict[str, Proc] = {}
    urls: dict[str, str] = {}
    for name in ("intake", "dispatch", "evaluation"):
        prefix = f"JIESU_{name.upper()}_"
        env = {
            f"{prefix}DATABASE_URL": await pg_databases(),
            f"{prefix}BUS": "kafka",
            f"{prefix}KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
            f"{prefix}TOPIC_NAMESPACE": namespace,
        }
        port = free_port()
        urls[name] = f"http://127.0.0.1:{port}"
        procs[name] = Proc(["serve", name, "--port", str(port), "--migrate"], log=tmp_path / f"{name}.log", env=env)
        procs[f"{name}-relay"] = Proc(["relay", name], log=tmp_path / f"{name}-relay.log", env=env)
    victims = ["dispatch", "intake-relay", "evaluation", "dispatch-relay"]
    accepted: list[str] = []
    with processes(*procs.values()):
        for name in ("intake", "dispatch", "evaluation"):
            wait_ready(urls[name], proc=procs[name])
        async with httpx.AsyncClient(timeout=10, headers=auth_headers()) as http:
            for round_number, victim in enumerate(victims):
                for n in range(15):
                    body = {
                        "source": "hotline",
                        "external_id": uuid.uuid4().hex,
                        "content": f"路灯不亮了，第{round_number}-{n}处",
                    }
                    answer = await http.post(f"{urls['intake']}/v1/reports", json=body)
                    assert answer.status_code == 201
                    accepted.append(answer.json()["id"])
                    if n == 7:
                        procs[victim].kill()  # at the worst moment: mid-stream, without any clean-up
                        procs[victim] = Proc(
                            procs[victim].args, log=tmp_path / f"{victim}-2.log", env=procs[victim].env
                        )
                        procs[victim].start()
                await asyncio.sleep(0.2)
            wait_ready(urls["dispatch"], proc=procs["dispatch"])
            wait_ready(urls["evaluation"], proc=procs["evaluation"])

            async def all_judged_once() -> bool:
                page = (await http.get(f"{urls['dispatch']}/v1/cases", params={"limit": 500})).json()
                return page["total"] == len(accepted) and sorted(c["id"] for c in page["items"]) == sorted(accepted)

            await eventually(all_judged_once, timeout=120, what=f"{len(accepted)} cases, each once, in dispatch")

            async def all_evaluated() -> bool:
                seen = [await http.get(f"{urls['evaluation']}/v1/evaluations/{case_id}") for case_id in accepted]
                return all(answer.status_code == 200 for answer in seen)

            await eventually(all_evaluated, timeout=120, what="every case in evaluation")
            metrics = (await http.get(f"{urls['evaluation']}/v1/metrics", params={"grouping": "all"})).json()
            assert sum(row["dispatched"] for row in metrics["items"]) == len(accepted)
        for proc in procs.values():
            proc.stop()

"""With the broker down, intake keeps accepting; when it returns, the backlog flows on and nothing is lost."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.procs import ROOT, free_port
from tests.helpers import eventually
from tests.stack import distributed_stack


class Broker:
    """A Kafka broker of this test's own, so stopping it disturbs no other test."""

    def __init__(self, var: Path) -> None:
        self.port = free_port()
        self.env = {**os.environ, "JIESU_VAR": str(var), "JIESU_KAFKA_PORT": str(self.port)}

    def run(self, action: str) -> None:
        done = subprocess.run(
            ["bash", "scripts/kafka.sh", action], cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, f"kafka.sh {action} failed:\n{done.stderr[-3000:]}"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"


@pytest.fixture
def broker(tmp_path: Path, kafka_bootstrap: str) -> Iterator[Broker]:
    own = Broker(tmp_path / "broker")
    own.run("start")
    try:
        yield own
    finally:
        own.run("stop")


async def test_reports_wait_in_the_outbox_while_kafka_is_down(
    broker: Broker, pg_databases: Callable[[], Awaitable[str]], namespace: str
) -> None:
    urls = {name: await pg_databases() for name in ("intake", "dispatch", "evaluation")}
    async with distributed_stack(urls, kafka=broker.bootstrap, namespace=namespace) as stack:
        first = await stack.report(source="hotline", external_id=uuid.uuid4().hex, content="路灯不亮了")
        await stack.case_in(first["id"], "dispatched", timeout=60)
        broker.run("stop")
        accepted = [
            await stack.report(source="hotline", external_id=uuid.uuid4().hex, content=f"第{n}盏路灯不亮")
            for n in range(5)
        ]
        ready = (await stack.intake.get("/readyz")).json()
        assert ready["checks"]["outbox_backlog"] >= 5

        async def degraded() -> dict[str, Any] | None:
            answer = await stack.intake.get("/readyz")
            body: dict[str, Any] = answer.json()
            return body if answer.status_code == 200 and body["status"] == "degraded" else None

        says = await eventually(degraded, timeout=60, what="readiness to say degraded while Kafka is down")
        assert says["checks"]["bus"].startswith("cannot publish")
        broker.run("start")
        for report in accepted:
            await stack.case_in(report["id"], "dispatched", timeout=120)

        async def drained() -> bool:
            return (await stack.intake.get("/readyz")).json()["checks"]["outbox_backlog"] == 0

        assert await eventually(drained, timeout=60, what="the intake outbox to drain")
        assert (await stack.intake.get("/readyz")).json()["status"] == "ready"
        page = (await stack.dispatch.get("/v1/cases", params={"limit": 100})).json()
        assert page["total"] == 6

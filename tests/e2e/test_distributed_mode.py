"""Distributed mode as deployed: each service and each relay its own process, PostgreSQL and the real Kafka."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from tests.e2e.journey import check_closed, drive_to_closed
from tests.e2e.procs import Proc, free_port, processes, wait_ready


async def test_reports_from_all_three_sources_reach_closed(
    tmp_path: Path, pg_databases: Callable[[], Awaitable[str]], kafka_bootstrap: str, namespace: str
) -> None:
    procs: list[Proc] = []
    urls: dict[str, str] = {}
    for name in ("intake", "dispatch", "evaluation"):
        prefix = f"JIESU_{name.upper()}_"
        env = {
            f"{prefix}DATABASE_URL": await pg_databases(),
            f"{prefix}BUS": "kafka",
            f"{prefix}KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
            f"{prefix}TOPIC_NAMESPACE": namespace,
            f"{prefix}ENVIRONMENT": "production",
            f"{prefix}CALLER_KEY_SECRET": "a-secret-of-this-test-run",
            f"{prefix}PII_KEYS": "run:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
        }
        port = free_port()
        urls[name] = f"http://127.0.0.1:{port}"
        procs.append(Proc(["serve", name, "--port", str(port), "--migrate"], log=tmp_path / f"{name}.log", env=env))
        procs.append(Proc(["relay", name], log=tmp_path / f"{name}-relay.log", env=env))
    with processes(*procs):
        for proc in procs[::2]:
            wait_ready(urls[proc.args[1]], proc=proc)
        check_closed(await drive_to_closed(urls["intake"], urls["dispatch"], urls["evaluation"], timeout=90))

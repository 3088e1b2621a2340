"""Two dispatch instances in one consumer group share the reports, each once; kill one and the other takes over."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
from aiokafka import AIOKafkaConsumer
from aiokafka.client import AIOKafkaClient

from shared import topics
from tests.e2e.fleet import ROUTED, SERVICES, Fleet, Load, all_cases, audit
from tests.e2e.procs import auth_headers
from tests.e2e.test_timers_restart import fast_guide
from tests.helpers import eventually

SECONDS = 1 / 3600
# Each case, with deadlines of seconds, passes through these timers; each must fire once, whichever instance fires it.
TIMERS = Counter(
    {
        ("warn", "sign"): 1,
        ("overdue", "sign"): 1,
        ("warn", "complete"): 1,
        ("overdue", "complete"): 1,
        ("urge", "complete"): 1,
    }
)


async def judged_by(http: httpx.AsyncClient, url: str, group: str) -> int:
    """How many reports one dispatch instance has judged (its Prometheus counter of the judge group)."""
    for line in (await http.get(f"{url}/metrics")).text.splitlines():
        if line.startswith("jiesu_events_consumed_total{") and f'group="{group}"' in line:
            return int(float(line.rsplit(" ", 1)[1]))
    return 0


async def unit_messages(bootstrap: str, namespace: str) -> list[tuple[str, str, str]]:
    """(unit topic, ce_type, "ce_id case") of every message on the units' topics of this namespace."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False, group_id=None
    )
    consumer.subscribe(pattern=f"^{re.escape(namespace + topics.UNIT_PREFIX)}.*")
    await consumer.start()
    found: list[tuple[str, str, str]] = []
    try:
        quiet = 0
        while quiet < 3:
            batches = await consumer.getmany(timeout_ms=1000)
            quiet = 0 if batches else quiet + 1
            for tp, records in batches.items():
                for record in records:
                    headers = {key: value.decode() for key, value in record.headers}
                    found.append((tp.topic, headers["ce_type"], f"{headers['ce_id']} {record.key.decode()}"))
    finally:
        await consumer.stop()
    return found


async def test_two_dispatchers_share_the_work_and_one_takes_over_when_the_other_dies(
    tmp_path: Path, pg_databases: Callable[[], Awaitable[str]], kafka_bootstrap: str, namespace: str
) -> None:
    urls = {service: await pg_databases() for service in SERVICES}
    env = {
        "JIESU_DISPATCH_GUIDE_PATH": str(fast_guide(tmp_path / "guide.json")),
        "JIESU_DISPATCH_TIMER_POLL_SECONDS": "0.2",
        "JIESU_DISPATCH_URGE_AFTER_HOURS": str(2 * SECONDS),
    }
    fleet = Fleet(tmp_path, database_urls=urls, kafka=kafka_bootstrap, namespace=namespace, dispatchers=2, env=env)
    group = f"{namespace}jiesu-dispatch-judge"
    first, second = fleet.urls["dispatch-1"], fleet.urls["dispatch-2"]
    with fleet.running():
        async with httpx.AsyncClient(timeout=30, headers=auth_headers()) as http:
            load = Load(fleet.urls["intake"], rate=10)
            stop = asyncio.Event()
            posting = asyncio.create_task(load.run(stop))

            async def both_judge() -> tuple[int, int] | None:
                counts = (await judged_by(http, first, group), await judged_by(http, second, group))
                return counts if min(counts) >= 3 else None

            shared = await eventually(both_judge, timeout=90, what="both dispatch instances to judge reports")
            partitions = await _partitions(kafka_bootstrap, namespace + topics.REPORTS)
            assert partitions >= 2, f"the reports topic has {partitions} partition(s): one instance would sit idle"
            fleet.kill("dispatch-1")  # mid-stream, with deliveries in hand and offsets not yet committed
            fleet.urls["dispatch"] = second
            taken_over = await judged_by(http, second, group)
            killed_at = len(load.accepted)

            async def carries_on() -> bool:
                return len(load.accepted) >= killed_at + 30 and await judged_by(http, second, group) > taken_over + 20

            await eventually(carries_on, timeout=90, what="the surviving instance to take over every partition")
            stop.set()
            await posting
            result = await audit(fleet.urls, load.accepted)
            assert result["cases"] == len(load.accepted) and shared[0] > 0 and shared[1] > 0

            cases = [case for case in await all_cases(http, second) if case["status"] in ROUTED]
            wrong: dict[str, dict[tuple[str, str], int]] = {}

            async def timers_fired_once() -> bool:
                wrong.clear()
                for case in cases:
                    entries = (await http.get(f"{second}/v1/cases/{case['id']}/timeline")).json()["entries"]
                    fired = Counter(
                        (e["action"], e["detail"]["deadline"]) for e in entries if e["actor"] == "system:timer"
                    )
                    if fired != TIMERS:
                        wrong[case["id"]] = dict(fired)
                return not wrong

            try:
                await eventually(timers_fired_once, timeout=60, what="every case's timers to fire once")
            except AssertionError:
                raise AssertionError(f"timers not fired exactly once: {list(wrong.items())[:3]}") from None

        messages = await unit_messages(kafka_bootstrap, namespace)
        assignments = [(topic, ident) for topic, kind, ident in messages if kind == topics.ASSIGNMENT_CREATED]
        # A consumer drops a redelivered event by its ce_id; what it must never see is the same assignment under
        # two ids (the work done twice). One assignment per case and unit topic, whatever the redeliveries.
        per_case = Counter((topic, ident.split()[1]) for topic, ident in set(assignments))
        assert [key for key, times in per_case.items() if times > 1] == []
        assert {ident.split()[1] for _, ident in assignments} == {case["id"] for case in cases}


async def _partitions(bootstrap: str, topic: str) -> int:
    client = AIOKafkaClient(bootstrap_servers=bootstrap)
    await client.bootstrap()
    try:
        return len((await client.fetch_all_metadata()).partitions_for_topic(topic) or ())
    finally:
        await client.close()

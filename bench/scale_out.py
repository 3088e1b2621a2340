"""Scale-out: how many reports a second one, then two, dispatch instances in one consumer group judge.

    uv run python -m bench.scale_out                          # 15,000 reports; 1, 2, 1, 2 instances
    uv run python -m bench.scale_out --reports 20000 --instances 1 2 3 --repeat 1 --out bench/results/scale.json
    uv run python -m bench.scale_out --partitions 6                # topics of 6 partitions instead of the default

Starts its own PostgreSQL and Kafka (a temporary JIESU_VAR and free ports, nothing shared is touched) and, for each
run, a fresh deployment: its own databases and topic namespace, every service and relay its own process, the city
guide. Evaluation is stopped (it would share the two cores); intake takes warm-up reports until every dispatch
instance has judged some (the group has formed, so no rebalance falls into the measurement), then the backlog
through its batch endpoint, faster than dispatch judges, and is stopped once all of it is on the reports topic.
Measured from that moment to 90% of the backlog (the instance with fewer partitions runs dry first, so the
last tenth is one instance's tail): reports judged per second, how many each instance judged (its consumer's
count on /metrics), the CPU of every dispatch instance, dispatch's relay, PostgreSQL and Kafka, and how busy the
whole machine was. Runs alternate between the instance counts; the summary gives each count's median.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.corpus import Corpus
from bench.procstat import Watched
from services.dispatch.settings import DispatchSettings
from shared import topics
from shared.settings import ServiceSettings
from tests.e2e.fleet import SERVICES, Fleet, OwnServer
from tests.e2e.procs import ROOT, auth_headers

BATCH = 500  # reports per batch request (intake's limit is larger)
WARM_UP = 300  # reports judged before the measurement
CONSUMED = re.compile(r'^jiesu_events_consumed_total\{[^}]*group="([^"]+)"[^}]*\} ([0-9.e+]+)$', re.M)


def say(message: str) -> None:
    print(f"[scale-out] {message}", file=sys.stderr, flush=True)


async def create_databases(server: OwnServer, run: int) -> dict[str, str]:
    """Fresh databases of one run, so a run's duplicate search does not see the cases of the run before."""
    conn = await asyncpg.connect(f"postgresql://jiesu:jiesu@127.0.0.1:{server.port}/jiesu")
    try:
        urls = {}
        for service in SERVICES:
            name = f"jiesu_{service}_scale{run}"
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            await conn.execute(f'CREATE DATABASE "{name}"')
            urls[service] = server.database_url(name)
        return urls
    finally:
        await conn.close()


async def post_backlog(intake: str, count: int, corpus: Corpus) -> None:
    """``count`` new reports through the batch endpoint, two requests in flight."""
    bodies = [corpus.report() for _ in range(count)]
    batches = [bodies[i : i + BATCH] for i in range(0, count, BATCH)]
    async with httpx.AsyncClient(base_url=intake, headers=auth_headers(), timeout=120) as http:
        slots = asyncio.Semaphore(2)

        async def send(batch: list[dict[str, Any]]) -> None:
            async with slots:
                answer = await http.post("/v1/reports/batch", json={"reports": batch})
                if answer.status_code != 200 or answer.json()["accepted"] != len(batch):
                    raise SystemExit(f"intake did not accept a batch: {answer.status_code} {answer.text[:500]}")

        await asyncio.gather(*(send(batch) for batch in batches))


async def topic_size(kafka: str, topic: str) -> int:
    """Messages on a topic (the sum of its partitions' end offsets)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka)
    await consumer.start()
    try:
        partitions = (await consumer._client.fetch_all_metadata()).partitions_for_topic(topic) or set()
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
        return sum(ends.values())
    finally:
        await consumer.stop()


async def judged_by(urls: dict[str, str], group: str) -> dict[str, int]:
    """Reports each dispatch instance's judging consumer applied so far (0 while it starts)."""
    counts = dict.fromkeys(urls, 0)
    async with httpx.AsyncClient(timeout=5, headers=auth_headers()) as http:
        for name, url in urls.items():
            try:
                answer = await http.get(f"{url}/metrics")
            except httpx.HTTPError:
                continue
            if answer.status_code != 200:
                raise SystemExit(f"{name} answered {answer.status_code} on /metrics: {answer.text[:300]}")
            text = answer.text
            counts[name] = int(sum(float(n) for g, n in CONSUMED.findall(text) if g == group))
    return counts


def _crossing(series: list[tuple[float, int]], level: float) -> float:
    """When the count first reached ``level`` (linear between samples)."""
    for (t0, n0), (t1, n1) in itertools.pairwise(series):
        if n1 >= level:
            return t1 if n1 == n0 else t0 + (t1 - t0) * (level - n0) / (n1 - n0)
    return series[-1][0]


def _server_pid(server: OwnServer) -> int | None:
    """The server's main process, from its script's ``status`` ("running (pid N)")."""
    status = subprocess.run(
        ["bash", f"scripts/{server.kind}.sh", "status"], cwd=ROOT, env=server.env, capture_output=True, text=True
    )
    found = re.search(r"pid (\d+)", status.stdout + status.stderr)
    return int(found.group(1)) if found else None


def _machine_busy() -> tuple[float, float]:
    """Busy and total CPU time of the whole machine so far (all cores, from /proc/stat)."""
    fields = [float(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle and iowait
    return sum(fields) - idle, sum(fields)


async def one_run(
    instances: int, *, run: int, args: argparse.Namespace, servers: dict[str, OwnServer], var: Path
) -> dict[str, Any]:
    """``instances`` dispatchers work off a backlog of reports; the rate, the shares and the CPU."""
    run_var = var / f"run-{run}"
    run_var.mkdir()
    namespace = f"scale{uuid.uuid4().hex[:8]}."
    fleet = Fleet(
        run_var,
        database_urls=await create_databases(servers["postgres"], run),
        kafka=servers["kafka"].bootstrap,
        namespace=namespace,
        dispatchers=instances,
        env={
            "JIESU_DISPATCH_GUIDE_PATH": str(DispatchSettings().guide_path),
            **{f"JIESU_{service.upper()}_KAFKA_PARTITIONS": str(args.partitions) for service in SERVICES},
        },
    )
    dispatchers = [name for name in fleet.procs if name.startswith("dispatch") and not name.endswith("-relay")]
    group = f"{namespace}jiesu-dispatch-judge"
    urls = {name: fleet.urls[name] for name in dispatchers}
    reports_topic = topics.named(namespace, topics.REPORTS)
    corpus = Corpus(seed=run)
    try:
        say(f"run {run}: {instances} dispatch instance(s); starting the deployment")
        await asyncio.to_thread(fleet.start)
        for name in ("evaluation", "evaluation-relay"):
            await asyncio.to_thread(fleet.procs[name].stop)
        # Warm-up until every instance judged some reports: the group has formed and owns its partitions, so no
        # rebalance falls into the measurement; imports and caches are warm.
        sent = 0
        while True:
            await post_backlog(fleet.urls["intake"], WARM_UP, corpus)
            sent += WARM_UP
            baseline = await _until_judged(urls, group, sent, timeout=args.timeout)
            if all(baseline.values()):
                break
            if sent >= 10 * WARM_UP:
                raise SystemExit(f"some dispatch instance judged nothing of {sent} reports: {baseline}; see {run_var}")
        say(f"  warmed up ({baseline}); evaluation stopped; posting {args.reports} reports")
        posting = asyncio.create_task(post_backlog(fleet.urls["intake"], args.reports, corpus))
        began = time.monotonic()
        series: list[tuple[float, int]] = [(0.0, 0)]
        counts: dict[str, int] = {}
        ready: tuple[float, int] | None = None  # when the whole backlog was on the topic and intake was stopped
        watched: list[Watched] = []
        busy_start = (0.0, 0.0)
        last_said = 0.0
        while series[-1][1] < args.reports:
            if time.monotonic() - began > args.timeout:
                judged = series[-1][1]
                raise SystemExit(f"dispatch judged {judged} of {args.reports} in {args.timeout}s; logs in {run_var}")
            await asyncio.sleep(0.5)
            counts = {n: c - baseline[n] for n, c in (await judged_by(urls, group)).items()}
            series.append((time.monotonic() - began, sum(counts.values())))
            if ready is None and posting.done():
                posting.result()  # a refused batch ends the bench here
                if await topic_size(servers["kafka"].bootstrap, reports_topic) >= sent + args.reports:
                    for name in ("intake", "intake-relay"):
                        await asyncio.to_thread(fleet.procs[name].stop)
                    ready = (time.monotonic() - began, series[-1][1])
                    watched = _watch(fleet, [*dispatchers, "dispatch-relay"], servers)
                    busy_start = _machine_busy()
                    say(f"  {ready[0]:5.0f} s  backlog on the topic, intake stopped; {ready[1]} judged so far")
            if series[-1][0] - last_said >= 10:
                last_said = series[-1][0]
                say(f"  {series[-1][0]:5.0f} s  judged {series[-1][1]} of {args.reports}  {counts}")
        if ready is None:
            raise SystemExit("dispatch judged the backlog before it was all on the topic: raise --reports")
        for w in watched:
            w.end()
        busy_end = _machine_busy()
        seconds = series[-1][0] - ready[0]
        high = _crossing(series, 0.9 * args.reports)
        # From the moment dispatch had the machine to itself (with PostgreSQL and Kafka) to 90% of the backlog.
        rate = round((0.9 * args.reports - ready[1]) / (high - ready[0]), 1) if ready[1] < 0.8 * args.reports else None
        say(f"  {instances} instance(s): {rate} reports/s; judged by {counts}")
        return {
            "instances": instances,
            "reports": args.reports,
            "reports_per_s": rate,
            "judged_before_intake_stopped": ready[1],
            "judged_by_instance": counts,
            "machine_busy_percent": round(100 * (busy_end[0] - busy_start[0]) / (busy_end[1] - busy_start[1]), 1),
            "cpu_percent": {w.name: round(100 * (w.cpu_end - w.cpu_start) / seconds, 1) for w in watched},
            "cpu_ms_per_report": {
                w.name: round(1000 * (w.cpu_end - w.cpu_start) / (args.reports - ready[1]), 2) for w in watched
            },
        }
    finally:
        await asyncio.to_thread(fleet.stop)


async def _until_judged(urls: dict[str, str], group: str, count: int, *, timeout: float) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    while sum((counts := await judged_by(urls, group)).values()) < count:
        if time.monotonic() > deadline:
            raise SystemExit(f"dispatch judged {counts} of {count} warm-up reports in {timeout}s")
        await asyncio.sleep(0.5)
    return counts


def _watch(fleet: Fleet, names: list[str], servers: dict[str, OwnServer]) -> list[Watched]:
    """CPU watchers of the named processes and of the servers, started now."""
    watched = [Watched(name, fleet.procs[name].popen.pid) for name in names]  # type: ignore[union-attr]
    for kind, server in servers.items():
        pid = _server_pid(server)
        if pid is None:
            raise SystemExit(f"no pid for the bench's {kind}: see scripts/{kind}.sh status")
        watched.append(Watched(kind, pid))
    for w in watched:
        w.begin()
    return watched


async def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="jiesu-scale-") as folder:
        var = Path(folder)
        servers = {"postgres": OwnServer("postgres", var), "kafka": OwnServer("kafka", var)}
        say("starting PostgreSQL and Kafka of the bench's own")
        await asyncio.gather(*(asyncio.to_thread(s.run, "start") for s in servers.values()))
        try:
            plan = [n for _ in range(args.repeat) for n in args.instances]
            runs = [
                await one_run(n, run=number, args=args, servers=servers, var=var)
                for number, n in enumerate(plan, start=1)
            ]
        finally:
            await asyncio.gather(*(asyncio.to_thread(s.run, "stop") for s in servers.values()))
    rates: dict[int, list[float]] = {}
    for found in runs:
        if found["reports_per_s"]:
            rates.setdefault(found["instances"], []).append(found["reports_per_s"])
    base = statistics.median(rates[args.instances[0]]) if rates.get(args.instances[0]) else None
    summary = {
        n: {
            "median_reports_per_s": statistics.median(r),
            "of_first": round(statistics.median(r) / base, 2) if base else None,
        }
        for n, r in rates.items()
    }
    return {"partitions": args.partitions, "runs": runs, "summary": summary}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reports", type=int, default=15000, help="backlog of reports per run")
    parser.add_argument("--instances", type=int, nargs="+", default=[1, 2], help="dispatch instances per run")
    parser.add_argument(
        "--partitions", type=int, default=ServiceSettings().kafka_partitions, help="partitions of each topic"
    )
    parser.add_argument("--repeat", type=int, default=2, help="runs of each instance count, alternating")
    parser.add_argument("--timeout", type=float, default=600, help="seconds a run may take to work off its backlog")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON result here")
    args = parser.parse_args()
    results = asyncio.run(run(args))
    text = json.dumps(results, indent=1)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()

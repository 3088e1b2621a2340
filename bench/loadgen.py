"""Open-loop load on jiesu: reports arrive at a fixed rate whatever the answers' speed, so queueing shows.

    uv run python -m bench.loadgen --mode embedded --rate 300 --duration 60
    uv run python -m bench.loadgen --mode distributed --rate 1000 --duration 300

Measures accepted rate, intake latency, end-to-end latency (POST to the assignment on the unit's topic),
time to closed for a sample of cases driven by simulated units and call-backs, CPU and peak RSS of every
process, and in the same run the throughput ceiling of a bare FastAPI endpoint and of intake, closed loop.
Where the time went is read back from the services' own outbox and inbox tables (``bench.stages``): how long
events waited in each outbox and how long their trip to each consumer group took. Writes results.json and, when
matplotlib is installed, chart.png into --out, and ends with each speed target's verdict: met, missed or not
judged, by how much, and why (``bench.targets``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import httpx
from aiokafka.admin import AIOKafkaAdminClient

from bench import targets
from bench.corpus import Corpus
from bench.procstat import Watched, machine_shares, machine_ticks
from bench.stages import percentile, stage_waits
from shared import topics
from shared.bus.base import Bus, Subscription
from shared.bus.embedded import EmbeddedBus
from shared.bus.kafka import KafkaBus
from shared.db import create_engine
from shared.guide import CITY_GUIDE, load_guide
from shared.jurisdiction import load_jurisdiction
from tools.kafka_acls.plan import build_plan

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable


def say(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def pct(values: list[float], q: float) -> float | None:
    """A quantile of seconds, in milliseconds."""
    found = percentile(values, q)
    return None if found is None else round(found * 1000, 2)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# The API key every request sends (an admin key with a rate limit far above the offered load), set once made.
HEADERS: dict[str, str] = {}
# The services keep a looked-up key this long, so that the run measures the report path, not the credential store.
# MALLOC_ARENA_MAX as the container image and `jiesu up` set it.
SERVICE_ENV = {"JIESU_AUTH_CACHE_SECONDS": "3600", "MALLOC_ARENA_MAX": "2"}


def create_key(env: dict[str, str]) -> None:
    """Make the bench's API key in the credential store the services share."""
    made = subprocess.run(
        [PYTHON, "-m", "services.cli", "keys", "create", "--role", "admin", "--name", "bench", "--rate", "1000000"],
        cwd=ROOT,
        env={**os.environ, **env},
        check=True,
        capture_output=True,
        text=True,
    )
    HEADERS["Authorization"] = f"Bearer {made.stdout.strip().splitlines()[-1]}"


def start(args: list[str], *, log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    with log.open("ab") as handle:
        return subprocess.Popen(args, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=handle, stderr=handle)


async def ready(url: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as http:
        while time.monotonic() < deadline:
            with suppress(httpx.HTTPError):
                if (await http.get(f"{url}/readyz")).status_code == 200:
                    return
            await asyncio.sleep(0.2)
    raise SystemExit(f"{url} did not become ready; see the logs in the --out folder")


async def closed_loop(url: str, corpus: Corpus, *, seconds: float, workers: int) -> float:
    """Requests per second with ``workers`` clients posting back to back."""
    done = 0
    stop_at = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=workers)
    async with aiohttp.ClientSession(
        headers=HEADERS, connector=connector, timeout=aiohttp.ClientTimeout(total=30)
    ) as http:

        async def worker() -> None:
            nonlocal done
            while time.monotonic() < stop_at:
                async with http.post(f"{url}/v1/reports", json=corpus.report()) as answer:
                    await answer.read()
                    done += answer.status == 201

        began = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(workers)))
        return round(done / (time.monotonic() - began), 1)


async def batch_rate(url: str, corpus: Corpus, *, seconds: float, size: int = 1000, workers: int = 2) -> float:
    """Reports per second through POST /v1/reports/batch."""
    done = 0
    stop_at = time.monotonic() + seconds
    async with aiohttp.ClientSession(headers=HEADERS, timeout=aiohttp.ClientTimeout(total=60)) as http:

        async def worker() -> None:
            nonlocal done
            while time.monotonic() < stop_at:
                batch = {"reports": [corpus.report() for _ in range(size)]}
                async with http.post(f"{url}/v1/reports/batch", json=batch) as answer:
                    if answer.status == 200:
                        done += (await answer.json())["accepted"]

        began = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(workers)))
        return round(done / (time.monotonic() - began), 1)


async def quiet(watched: list[Watched], *, below: float = 0.15, timeout: float = 120) -> None:
    """Wait until the services have worked off the warm-up's reports, so the run's CPU is its own."""
    services = [w for w in watched if w.name != "load generator" and not w.name.startswith("up:")]
    deadline = time.monotonic() + timeout
    before = sum(w.cpu_now() for w in services)
    while time.monotonic() < deadline:
        await asyncio.sleep(1)
        now = sum(w.cpu_now() for w in services)
        if now - before < below:
            return
        before = now
    say(f"the services were still busy {timeout:.0f}s after the warm-up; measuring anyway")


class Observer:
    """Watches the unit topics (each case's assignment) and the case topic (completion and closure).

    The simulated units act on what they see here, as a department app consuming its topic would: polling the
    REST API for every simulated case would put a load on dispatch that grows with the backlog being measured.
    """

    def __init__(self, subscription: Subscription) -> None:
        self.subscription = subscription
        self.seen: dict[str, float] = {}
        self.not_assigned: dict[str, str] = {}  # case id -> the judgement that gave it no unit (merge, triage ...)
        self.assigned: dict[str, asyncio.Future[str]] = {}  # case id -> its primary unit, for simulated cases
        self.completed: dict[str, asyncio.Future[None]] = {}
        self.closed: dict[str, asyncio.Future[float]] = {}
        self.stop = asyncio.Event()

    def follow(self, case_id: str) -> None:
        """Tell a simulated case's assignment, completion and closure as they appear."""
        loop = asyncio.get_running_loop()
        self.assigned[case_id] = loop.create_future()
        self.completed[case_id] = loop.create_future()
        self.closed[case_id] = loop.create_future()

    def _settle(self, waiting: dict[str, Any], case_id: str, value: Any) -> None:
        future = waiting.get(case_id)
        if future is not None and not future.done():
            future.set_result(value)

    async def run(self) -> None:
        await self.subscription.start()
        while not self.stop.is_set():
            for delivery in await self.subscription.fetch(max_records=1000, timeout=0.2):
                event, case_id = delivery.event, delivery.event.subject
                if not case_id:
                    continue
                if event.type == topics.ASSIGNMENT_CREATED:
                    if event.data.get("role") == "primary":
                        self.seen.setdefault(case_id, time.time())
                        self._settle(self.assigned, case_id, event.data.get("unit_code"))
                elif event.type == topics.CASE_JUDGED and event.data.get("decision") != "dispatch":
                    self.not_assigned[case_id] = str(event.data.get("decision"))
                elif event.type == topics.CASE_COMPLETED:
                    self._settle(self.completed, case_id, None)
                elif event.type == topics.CASE_CLOSED:
                    self._settle(self.closed, case_id, time.time())
        await self.subscription.close()


async def open_loop(
    url: str, corpus: Corpus, *, rate: float, seconds: float, on_accepted: Callable[[str, float], Awaitable[None]]
) -> dict[str, Any]:
    """Send at a fixed rate; latency counts from the intended send time (no coordinated omission)."""
    total = int(rate * seconds)
    latencies: list[float] = []
    per_second: dict[int, list[float]] = {}
    sent: dict[str, float] = {}
    failures = 0
    connector = aiohttp.TCPConnector(limit=512)
    async with aiohttp.ClientSession(
        headers=HEADERS, connector=connector, timeout=aiohttp.ClientTimeout(total=30)
    ) as http:
        t0 = time.time() + 0.5

        async def one(i: int, due: float) -> None:
            nonlocal failures
            try:
                async with http.post(f"{url}/v1/reports", json=corpus.report()) as answer:
                    body = await answer.json() if answer.status == 201 else None
            except (aiohttp.ClientError, TimeoutError):
                failures += 1
                return
            took = time.time() - due
            if body is None:
                failures += 1
                return
            latencies.append(took)
            per_second.setdefault(int(due - t0), []).append(took)
            sent[body["id"]] = due
            await on_accepted(body["id"], due)

        # One scheduler starts each request at its time, so thousands of sleeping tasks do not pile up.
        tasks = []
        for i in range(total):
            due = t0 + i / rate
            delay = due - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i, due)))
        await asyncio.gather(*tasks)
        elapsed = time.time() - t0
    return {
        "offered_rate": rate,
        "requests": total,
        "accepted": len(latencies),
        "failures": failures,
        "accepted_rate": round(len(latencies) / elapsed, 1),
        "intake_p50_ms": pct(latencies, 0.5),
        "intake_p99_ms": pct(latencies, 0.99),
        "series": {
            s: {"n": len(v), "p50_ms": pct(v, 0.5), "p99_ms": pct(v, 0.99)} for s, v in sorted(per_second.items())
        },
        "sent": sent,
    }


async def simulate(
    http: aiohttp.ClientSession, observer: Observer, urls: dict[str, str], case_id: str, began: float
) -> float | None:
    """A unit signs and completes its assignment, the citizen answers the call-back: seconds to closed, or None."""
    try:
        async with asyncio.timeout(120):  # an overloaded system may not get there: that case is not counted
            unit = await observer.assigned[case_id]
            case = f"{urls['dispatch']}/v1/cases/{case_id}"
            async with http.post(f"{case}/sign", json={"unit_code": unit}) as answer:
                await answer.read()
            async with http.post(f"{case}/complete", json={"unit_code": unit, "result": "已处理"}) as answer:
                await answer.read()
            await observer.completed[case_id]
            feedback = {"case_id": case_id, "resolved": True, "satisfaction": "satisfied"}
            while True:  # evaluation answers 404/409 until it has applied the completion itself
                async with http.post(f"{urls['evaluation']}/v1/feedback", json=feedback) as answer:
                    await answer.read()
                    if answer.status == 201:
                        break
                await asyncio.sleep(0.25)
            return await observer.closed[case_id] - began
    except (TimeoutError, aiohttp.ClientError):
        return None


def deployment_topics(namespace: str) -> list[str]:
    """The topics of a deployment with the city guide's and the sample jurisdiction's units."""
    units = load_guide(CITY_GUIDE, extra_units=load_jurisdiction().units).units
    return list(build_plan([unit.code for unit in units], namespace=namespace).topics)


def server_process(server: str) -> Watched | None:
    """The project's own PostgreSQL or Kafka server (scripts/postgres.sh, scripts/kafka.sh), when it runs here."""
    pattern = "pg/**/postmaster.pid" if server == "postgres" else "kafka/kafka.pid"
    pidfile = next((ROOT / "var").glob(pattern), None)
    return Watched(server, int(pidfile.read_text().split()[0])) if pidfile is not None else None


async def _ignore(_case_id: str, _due: float) -> None:
    """Reports of the warm-up are not followed."""


async def run(args: argparse.Namespace) -> dict[str, Any]:
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    corpus = Corpus()
    if args.mode == "distributed":
        # Servers first: a port chosen free before Kafka starts could be the one its controller then takes.
        for server in ("postgres", "kafka"):
            subprocess.run(["bash", f"scripts/{server}.sh", "start"], cwd=ROOT, check=True)
    ports = {name: free_port() for name in ("intake", "dispatch", "evaluation", "bare")}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    procs: dict[str, subprocess.Popen[bytes]] = {}
    made: list[str] = []  # PostgreSQL databases this run created
    kafka = ""  # the broker of a distributed run, whose topics of this run's namespace are deleted at the end
    admin_url = ""
    databases: dict[str, str] = {}  # each service's database, to read where the time went (bench.stages)
    bus: Bus
    namespace = ""
    say(f"mode {args.mode}; logs and results in {out}")
    procs["bare"] = start(
        [
            PYTHON,
            "-m",
            "uvicorn",
            "bench.bare_app:app",
            "--port",
            str(ports["bare"]),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        log=out / "bare.log",
    )
    if args.mode == "embedded":
        var = out / "var"
        procs["jiesu-up"] = start(
            [
                PYTHON,
                "-m",
                "services.cli",
                "--log-level",
                "warning",
                "up",
                "--var",
                str(var),
                "--ports",
                str(ports["intake"]),
                str(ports["dispatch"]),
                str(ports["evaluation"]),
                "--background-nice",
                str(args.background_nice),
            ],
            log=out / "up.log",
            env=SERVICE_ENV,
        )
        bus = EmbeddedBus(create_engine(f"sqlite+aiosqlite:///{var / 'bus.db'}"), poll_seconds=0.01)
        databases = {name: f"sqlite+aiosqlite:///{var / f'{name}.db'}" for name in ("intake", "dispatch", "evaluation")}
    else:
        namespace = f"bench{uuid.uuid4().hex[:6]}."
        kafka = subprocess.run(
            ["bash", "scripts/kafka.sh", "bootstrap"], cwd=ROOT, check=True, capture_output=True, text=True
        ).stdout.strip()
        bus = KafkaBus(kafka, client_id="bench-observer")
        # Every topic exists before the first report, as `jiesu kafka-acls apply` makes them in a deployment: the
        # observer's pattern subscription then has each unit's topic from its first look, instead of finding one
        # created mid-run at its next metadata refresh (up to 5 s, and a rebalance) and adding that to the latency.
        await bus.ensure_topics(deployment_topics(namespace))
        admin_url = subprocess.run(
            ["bash", "scripts/postgres.sh", "url"], cwd=ROOT, check=True, capture_output=True, text=True
        ).stdout.strip()
        admin = await asyncpg.connect(admin_url.replace("postgresql+asyncpg", "postgresql"))
        credentials = f"jiesu_bench_{namespace[5:-1]}_auth"
        await admin.execute(f'CREATE DATABASE "{credentials}"')
        made.append(credentials)
        auth_env = SERVICE_ENV | {"JIESU_AUTH_DATABASE_URL": admin_url.rsplit("/", 1)[0] + f"/{credentials}"}
        subprocess.run(
            [PYTHON, "-m", "services.cli", "migrate", "auth"], cwd=ROOT, env={**os.environ, **auth_env}, check=True
        )
        create_key(auth_env)
        for name in ("intake", "dispatch", "evaluation"):
            database = f"jiesu_bench_{namespace[5:-1]}_{name}"
            await admin.execute(f'CREATE DATABASE "{database}"')
            made.append(database)
            databases[name] = admin_url.rsplit("/", 1)[0] + f"/{database}"
            prefix = f"JIESU_{name.upper()}_"
            env = auth_env | {
                f"{prefix}DATABASE_URL": databases[name],
                f"{prefix}BUS": "kafka",
                f"{prefix}KAFKA_BOOTSTRAP_SERVERS": kafka,
                f"{prefix}TOPIC_NAMESPACE": namespace,
            }
            subprocess.run(
                [PYTHON, "-m", "services.cli", "migrate", name], cwd=ROOT, env={**os.environ, **env}, check=True
            )
            # As `jiesu up` lowers the services off the response path (``response_path`` in services.registry).
            lowered = ["--nice", str(args.background_nice)] if name == "evaluation" and args.background_nice else []
            serve = [PYTHON, "-m", "services.cli", "--log-level", "warning", "serve", name, "--port", str(ports[name])]
            procs[name] = start(
                [*serve, *lowered],
                log=out / f"{name}.log",
                env=env,
            )
            procs[f"{name}-relay"] = start(
                [PYTHON, "-m", "services.cli", "--log-level", "warning", "relay", name],
                log=out / f"{name}-relay.log",
                env=env,
            )
        await admin.close()
    try:
        for url in (urls["intake"], urls["dispatch"], urls["evaluation"], urls["bare"]):
            await ready(url)
        if args.mode == "embedded":
            create_key({"JIESU_AUTH_DATABASE_URL": f"sqlite+aiosqlite:///{(out / 'var' / 'auth.db').resolve()}"})
        say("warming up")
        await closed_loop(urls["intake"], corpus, seconds=3, workers=8)
        say("ceiling: bare FastAPI endpoint, closed loop")
        bare = await closed_loop(urls["bare"], corpus, seconds=args.ceiling_seconds, workers=64)
        say(f"  {bare} req/s")
        # Watching from here, so what the warm-up makes is read before the measured window, not inside it.
        await bus.start()
        prefix = namespace.replace(".", r"\.")
        observer = Observer(
            bus.subscribe(
                group=f"bench-{uuid.uuid4().hex[:6]}", pattern=rf"^{prefix}jiesu\.dispatch\.(unit\..*|cases)$"
            )
        )
        observing = asyncio.create_task(observer.run())
        if args.warmup_seconds > 0:
            # At the run's own rate through the whole path: a broker's JVM compiles its hot paths in its first
            # minutes, and half of a fresh Kafka's CPU in a 30 s run was that compiling, not the run's work.
            say(f"warming up at the run's rate: {args.rate} reports/s for {args.warmup_seconds:.0f}s (not measured)")
            await open_loop(urls["intake"], corpus, rate=args.rate, seconds=args.warmup_seconds, on_accepted=_ignore)
        watched = [Watched(name, proc.pid) for name, proc in procs.items() if name != "bare"]
        watched.append(Watched("load generator", os.getpid(), children=False))
        if args.mode == "embedded":  # `jiesu up` names each service's process: watch each (the above sums them)
            started = re.finditer(r"jiesu: (\w+) on http://\S+\s+\(process (\d+);", (out / "up.log").read_text())
            watched += [Watched(f"up:{m[1]}", int(m[2])) for m in started]
        if args.mode == "distributed":
            watched += [found for found in map(server_process, ("postgres", "kafka")) if found is not None]
        await quiet(watched)
        for w in watched:
            w.begin()
        machine_before = machine_ticks()
        sampling = True

        async def sample() -> None:
            while sampling:
                for w in watched:
                    w.sample()
                await asyncio.sleep(1)

        sampler = asyncio.create_task(sample())
        simulations: list[asyncio.Task[float | None]] = []
        rng = random.Random(3)
        units = aiohttp.ClientSession(headers=HEADERS, timeout=aiohttp.ClientTimeout(total=30))

        async def accepted(case_id: str, due: float) -> None:
            if rng.random() < args.simulate_share:
                observer.follow(case_id)
                simulations.append(asyncio.create_task(simulate(units, observer, urls, case_id, due)))

        say(f"open loop: {args.rate} reports/s for {args.duration}s")
        began = time.time()
        load = await open_loop(urls["intake"], corpus, rate=args.rate, seconds=args.duration, on_accepted=accepted)
        say(f"  accepted {load['accepted_rate']}/s; waiting for the assignments to drain")
        sent: dict[str, float] = load.pop("sent")
        deadline = time.time() + args.drain_seconds
        while time.time() < deadline and len(set(sent) & (set(observer.seen) | set(observer.not_assigned))) < len(sent):
            await asyncio.sleep(0.5)
        seconds = time.time() - began
        sampling = False
        await sampler
        for w in watched:
            w.end()
        machine = machine_shares(machine_before, machine_ticks())
        closes = [c for c in await asyncio.gather(*simulations) if c is not None]
        await units.close()
        e2e = [observer.seen[c] - t for c, t in sent.items() if c in observer.seen]
        judged_otherwise = Counter(observer.not_assigned[c] for c in sent if c in observer.not_assigned)
        observer.stop.set()
        await observing
        stages = await stage_waits(
            databases, since=datetime.fromtimestamp(began, UTC), until=datetime.fromtimestamp(time.time(), UTC)
        )
        for group, trip in stages["trip_to_consumer"].items():
            say(f"  outbox to {group}: p50 {trip['p50_ms']} ms, p99 {trip['p99_ms']} ms ({trip['events']} events)")
        say("ceiling: intake single reports, closed loop; then batch intake")
        intake_ceiling = await closed_loop(urls["intake"], corpus, seconds=args.ceiling_seconds, workers=64)
        batch = await batch_rate(urls["intake"], corpus, seconds=args.ceiling_seconds)
        return {
            "mode": args.mode,
            "warmup_seconds": args.warmup_seconds,
            "machine": {"cpus": os.cpu_count(), **machine},
            "load": load,
            "end_to_end": {
                "observed": len(e2e),
                "not_assigned": dict(judged_otherwise),  # merged into an earlier case, left to triage ...
                "missing": len(sent) - len(e2e) - sum(judged_otherwise.values()),
                "p50_ms": pct(e2e, 0.5),
                "p99_ms": pct(e2e, 0.99),
                "series": _series(sent, observer.seen),
            },
            "time_to_closed": {"sampled": len(closes), "p50_ms": pct(closes, 0.5), "p99_ms": pct(closes, 0.99)},
            "ceiling": {
                "bare_fastapi_rps": bare,
                "intake_single_rps": intake_ceiling,
                "intake_share_of_bare": round(intake_ceiling / bare, 3) if bare else None,
                "batch_reports_per_s": batch,
            },
            "processes": {w.name: w.summary(seconds, len(e2e)) for w in watched},
            "stages": stages,
        }
    finally:
        await bus.close()
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            with suppress(subprocess.TimeoutExpired):
                proc.wait(20)
        if kafka and namespace:
            # The run's topics too: the broker keeps every topic it ever had, and its start slows with their number.
            try:
                say(f"deleted the run's {await delete_topics(kafka, namespace)} topics")
            except Exception as error:
                say(f"could not delete the topics of {namespace} ({error}); they stay on the broker")
        if made:  # the run's databases go with it (the results are in --out)
            admin = await asyncpg.connect(admin_url.replace("postgresql+asyncpg", "postgresql"))
            try:
                for database in made:
                    await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            finally:
                await admin.close()


async def delete_topics(bootstrap: str, prefix: str) -> int:
    """Delete the broker's topics whose names start with ``prefix``; how many there were."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        names = [topic for topic in await admin.list_topics() if topic.startswith(prefix)]
        if names:
            await admin.delete_topics(names)
        return len(names)
    finally:
        await admin.close()


def _series(sent: dict[str, float], seen: dict[str, float]) -> dict[int, dict[str, float | None]]:
    if not sent:
        return {}
    t0 = min(sent.values())
    buckets: dict[int, list[float]] = {}
    for case_id, due in sent.items():
        if case_id in seen:
            buckets.setdefault(int(due - t0), []).append(seen[case_id] - due)
    return {s: {"n": len(v), "p50_ms": pct(v, 0.5), "p99_ms": pct(v, 0.99)} for s, v in sorted(buckets.items())}


def chart(results: dict[str, Any], path: Path) -> bool:
    """Rate and latency over the run, if matplotlib is available."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    intake = results["load"]["series"]
    e2e = results["end_to_end"]["series"]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    top.plot(list(intake), [v["n"] for v in intake.values()], label="accepted reports/s")
    top.axhline(results["load"]["offered_rate"], linestyle="--", color="grey", label="offered rate")
    top.set_ylabel("reports per second")
    top.legend()
    for name, series in (("intake", intake), ("end to end", e2e)):
        bottom.plot(list(series), [v["p99_ms"] for v in series.values()], label=f"{name} p99")
        bottom.plot(list(series), [v["p50_ms"] for v in series.values()], label=f"{name} p50", alpha=0.6)
    bottom.set_yscale("log")
    bottom.set_ylabel("latency (ms)")
    bottom.set_xlabel("second of the run")
    bottom.legend()
    fig.suptitle(f"jiesu {results['mode']} mode, {results['load']['offered_rate']} reports/s offered")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=["embedded", "distributed"], default="embedded")
    parser.add_argument("--rate", type=float, default=300)
    parser.add_argument("--duration", type=float, default=60)
    parser.add_argument("--drain-seconds", type=float, default=60)
    parser.add_argument("--ceiling-seconds", type=float, default=10)
    parser.add_argument(
        "--warmup-seconds",
        type=float,
        default=None,
        help="reports at the run's rate before measuring (default: 20 distributed, for the broker's JVM; 0 embedded)",
    )
    parser.add_argument("--simulate-share", type=float, default=0.02, help="share of cases driven to closed")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--background-nice",
        type=int,
        choices=range(20),
        default=10,
        metavar="N",
        help="CPU priority lowered by N (0-19) for the services off the response path (evaluation), as `jiesu up` "
        "does by default; 0 runs them at the others' priority (default: 10)",
    )
    args = parser.parse_args()
    if args.warmup_seconds is None:
        args.warmup_seconds = 20.0 if args.mode == "distributed" else 0.0
    args.out = args.out or ROOT / "bench" / "results" / f"{args.mode}-{int(args.rate)}-{time.strftime('%Y%m%dT%H%M%S')}"
    results = asyncio.run(run(args))
    results |= targets.judge_load(results)
    (args.out / "results.json").write_text(json.dumps(results, indent=1, ensure_ascii=False))
    drew = chart(results, args.out / "chart.png")
    brief = {k: v for k, v in results.items() if k not in ("load", "end_to_end")}
    brief["load"] = {k: v for k, v in results["load"].items() if k != "series"}
    brief["end_to_end"] = {k: v for k, v in results["end_to_end"].items() if k != "series"}
    print(json.dumps(brief, indent=1, ensure_ascii=False))
    for line in targets.lines(results):
        say(line)
    say(f"results: {args.out / 'results.json'}" + (f", chart: {args.out / 'chart.png'}" if drew else ""))


if __name__ == "__main__":
    main()

"""Ceiling of intake's batch endpoint: reports/s and server CPU per report, and where the time goes.

    uv run python -m bench.intake_batch                        # a server, 3 clients posting 1,000 reports each
    uv run python -m bench.intake_batch --profile 10           # also cProfile 10 batches in-process (ASGI)
    uv run python -m bench.intake_batch --skip-server --profile 10
    uv run python -m bench.intake_batch --prefill 300                 # measured with 300,000 reports stored first
    uv run python -m bench.intake_batch --database "$(bash scripts/postgres.sh url)"   # on PostgreSQL
    uv run python -m bench.intake_batch --database "$(bash scripts/postgres.sh url)" --instances 2

The server runs alone under ``jiesu serve`` on SQLite in a temporary folder, or with ``--database`` on a scratch
PostgreSQL database (as in distributed mode; several ``--instances`` share it, each with its own clients, and the
PostgreSQL server's CPU is counted beside theirs when it is the project's own). The bodies are drawn and encoded
before any clock starts, so the clients cost little. Every report of every batch is new (201).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench import targets
from bench.corpus import Corpus
from bench.intake_ceiling import batch_bodies, post_all, servers
from bench.loadgen import HEADERS, say, server_process
from bench.procstat import Watched
from bench.scratch import drop_databases, scratch_database


async def measure(
    *,
    var: Path,
    bodies: list[bytes],
    warm: list[bytes],
    workers: int,
    prefill: list[bytes],
    database_url: str | None = None,
    instances: int = 1,
) -> dict[str, Any]:
    """Reports/s and server CPU per report of intake servers started for the purpose (clients spread over them)."""
    async with servers("intake", var, database_url=database_url, instances=instances) as running:
        urls = [url for url, _ in running]

        async def post_spread(batches: list[bytes]) -> int:
            # As a load balancer would: each instance its share of the batches and its own clients.
            shares = [batches[number :: len(urls)] for number in range(len(urls))]
            return sum(
                await asyncio.gather(*(post_all(u, b, workers=workers) for u, b in zip(urls, shares, strict=True)))
            )

        await post_spread(warm)  # warm-up: imports, caches, first connections
        if prefill:
            # A city's intake holds months of reports: what a batch costs must not grow with them.
            say(f"  storing {len(prefill)} batches first (not measured)")
            began = time.monotonic()
            stored = await post_spread(prefill)
            say(f"  {stored} reports stored in {time.monotonic() - began:.0f}s")
        await asyncio.sleep(3)  # let the server's work after the warm-up settle
        watched = [Watched(f"intake-{number + 1}", proc.pid) for number, (_, proc) in enumerate(running)]
        database = server_process("postgres") if database_url else None  # its CPU is the store's
        if database is not None:
            watched.append(database)
        for each in watched:
            each.begin()
        began = time.monotonic()
        accepted = await post_spread(bodies)
        elapsed = time.monotonic() - began
        for each in watched:
            each.end()
        cpu = {each.name: each.cpu_end - each.cpu_start for each in watched}
        per_instance = [cpu[each.name] for each in watched[:instances]]
        server_cpu = sum(per_instance)
        results: dict[str, Any] = {
            "reports": accepted,
            "reports_per_s": round(accepted / elapsed, 1),
            "server_cpu_us_per_report": round(server_cpu * 1e6 / accepted, 1),
            "server_cpu_share": round(server_cpu / elapsed, 2),
        }
        if instances > 1:
            results["instances"] = instances
            results["cpu_share_per_instance"] = [round(seconds / elapsed, 2) for seconds in per_instance]
        if database is not None:
            results["postgres_cpu_us_per_report"] = round(cpu["postgres"] * 1e6 / accepted, 1)
            results["postgres_cpu_share"] = round(cpu["postgres"] / elapsed, 2)
        return results


async def profile(batches: int, *, size: int, var: Path, corpus: Corpus, top: int) -> dict[str, Any]:
    """CPU per report of the batch route in-process (httpx over ASGI, client included) and cProfile's top."""
    from services.cli import settle_heap
    from services.intake.app import create_app
    from services.intake.settings import IntakeSettings
    from shared.auth import AuthSettings

    folder = var / "in-process"
    folder.mkdir()
    settings = IntakeSettings(
        database_url=f"sqlite+aiosqlite:///{folder / 'intake.db'}",
        embedded_bus_url=f"sqlite+aiosqlite:///{folder / 'bus.db'}",
    )
    auth = AuthSettings(database_url=f"sqlite+aiosqlite:///{folder / 'auth.db'}", cache_seconds=3600)
    app = create_app(settings, migrate_on_start=True, auth=auth)
    bodies = batch_bodies(corpus, batches=batches + 1, size=size)
    async with app.router.lifespan_context(app):
        _, key = await app.state.auth.store.create(role="admin", name="profile", rate_per_second=1e6)
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://intake", headers=headers, timeout=120
        ) as http:
            await http.post("/v1/reports/batch", content=bodies[0])  # warm-up
            settle_heap()  # as `jiesu serve` does once started
            profiler = cProfile.Profile()
            cpu = time.process_time()
            profiler.enable()
            for body in bodies[1:]:
                answer = await http.post("/v1/reports/batch", content=body)
                if answer.status_code != 200:
                    raise SystemExit(f"intake refused a batch: {answer.status_code} {answer.text}")
            profiler.disable()
            cpu = time.process_time() - cpu
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    reports = batches * size
    return {"reports": reports, "cpu_us_per_report": round(cpu * 1e6 / reports, 1), "profile": text.getvalue()}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Measure the server, then profile if asked."""
    corpus = Corpus()
    results: dict[str, Any] = {"load_average": os.getloadavg(), "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="jiesu-batch-") as folder:
        var = Path(folder)
        if not args.skip_server:
            warm = batch_bodies(corpus, batches=args.workers * args.instances, size=args.size)
            bodies = batch_bodies(corpus, batches=args.batches, size=args.size)
            where = "SQLite" if args.database is None else "PostgreSQL"
            say(
                f"intake on {where}: {args.instances} instance(s), {args.batches} batches of {args.size}, "
                f"{args.workers} clients each"
            )
            prefill = batch_bodies(corpus, batches=args.prefill, size=args.size)
            database_url = (
                None
                if args.database is None
                else await scratch_database(args.database, "intake", var, prefix="jiesu_batch")
            )
            try:
                results["server"] = await measure(
                    var=var,
                    bodies=bodies,
                    warm=warm,
                    workers=args.workers,
                    prefill=prefill,
                    database_url=database_url,
                    instances=args.instances,
                ) | {"stored_before": args.prefill * args.size, "database": where}
            finally:
                if database_url is not None:
                    await drop_databases(args.database, [database_url])
            say(f"  {results['server']}")
        if args.profile:
            say(f"in-process profile of {args.profile} batches of {args.size}")
            results["in_process"] = await profile(args.profile, size=args.size, var=var, corpus=corpus, top=args.top)
    HEADERS.clear()
    return results


def main() -> None:
    """Parse arguments, run, print the figures (and the profile)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=30, help="batches posted while measuring")
    parser.add_argument("--size", type=int, default=1000, help="reports per batch")
    parser.add_argument("--workers", type=int, default=3, help="clients posting at once (to each instance)")
    parser.add_argument("--instances", type=int, default=1, help="intake servers sharing the database")
    parser.add_argument(
        "--database",
        metavar="URL",
        help="PostgreSQL server to store in (a scratch database beside the URL's, dropped after); default SQLite",
    )
    parser.add_argument("--prefill", type=int, default=0, metavar="BATCHES", help="batches stored before measuring")
    parser.add_argument("--profile", type=int, default=0, metavar="BATCHES", help="also profile this many in-process")
    parser.add_argument("--top", type=int, default=30, help="functions shown by the profile")
    parser.add_argument("--skip-server", action="store_true", help="only the in-process profile")
    args = parser.parse_args()
    results = asyncio.run(run(args))
    if "server" in results:
        results["targets"] = [targets.batch_verdict(results["server"]["reports_per_s"])]
    text = results.get("in_process", {}).pop("profile", None)
    if text:
        print(text)
    print(json.dumps(results, indent=1))
    for line in targets.lines(results):
        say(line)


if __name__ == "__main__":
    main()

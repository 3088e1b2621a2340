"""Ceiling of intake's batch endpoint: reports/s and server CPU per report, and where the time goes.

    uv run python -m bench.intake_batch                        # a server, 3 clients posting 1,000 reports each
    uv run python -m bench.intake_batch --profile 10           # also cProfile 10 batches in-process (ASGI)
    uv run python -m bench.intake_batch --skip-server --profile 10
    uv run python -m bench.intake_batch --prefill 300                 # measured with 300,000 reports stored first

The server runs alone under ``jiesu serve`` on SQLite in a temporary folder; the bodies are drawn and encoded
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

from bench.corpus import Corpus
from bench.intake_ceiling import batch_bodies, post_all, started
from bench.loadgen import HEADERS, say
from bench.procstat import Watched


async def measure(
    *, var: Path, bodies: list[bytes], warm: list[bytes], workers: int, prefill: list[bytes]
) -> dict[str, Any]:
    """Reports/s and server CPU per report of an intake server started for the purpose."""
    async with started("intake", var) as (url, proc):
        await post_all(url, warm, workers=workers)  # warm-up: imports, caches, first connections
        if prefill:
            # A city's intake holds months of reports: what a batch costs must not grow with them.
            say(f"  storing {len(prefill)} batches first (not measured)")
            began = time.monotonic()
            stored = await post_all(url, prefill, workers=workers)
            say(f"  {stored} reports stored in {time.monotonic() - began:.0f}s")
        await asyncio.sleep(3)  # let the server's work after the warm-up settle
        watched = Watched("intake", proc.pid)
        watched.begin()
        began = time.monotonic()
        accepted = await post_all(url, bodies, workers=workers)
        elapsed = time.monotonic() - began
        watched.end()
        cpu = watched.cpu_end - watched.cpu_start
        return {
            "reports": accepted,
            "reports_per_s": round(accepted / elapsed, 1),
            "server_cpu_us_per_report": round(cpu * 1e6 / accepted, 1),
            "server_cpu_share": round(cpu / elapsed, 2),
        }


async def profile(batches: int, *, size: int, var: Path, corpus: Corpus, top: int) -> dict[str, Any]:
    """CPU per report of the batch route in-process (httpx over ASGI, client included) and cProfile's top."""
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
            warm = batch_bodies(corpus, batches=args.workers, size=args.size)
            bodies = batch_bodies(corpus, batches=args.batches, size=args.size)
            say(f"intake: {args.batches} batches of {args.size}, {args.workers} clients")
            prefill = batch_bodies(corpus, batches=args.prefill, size=args.size)
            results["server"] = await measure(
                var=var, bodies=bodies, warm=warm, workers=args.workers, prefill=prefill
            ) | {"stored_before": args.prefill * args.size}
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
    parser.add_argument("--workers", type=int, default=3, help="clients posting at once")
    parser.add_argument("--prefill", type=int, default=0, metavar="BATCHES", help="batches stored before measuring")
    parser.add_argument("--profile", type=int, default=0, metavar="BATCHES", help="also profile this many in-process")
    parser.add_argument("--top", type=int, default=30, help="functions shown by the profile")
    parser.add_argument("--skip-server", action="store_true", help="only the in-process profile")
    args = parser.parse_args()
    results = asyncio.run(run(args))
    text = results.get("in_process", {}).pop("profile", None)
    if text:
        print(text)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()

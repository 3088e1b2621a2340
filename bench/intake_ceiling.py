"""Ceiling of intake's single-report endpoint against a bare FastAPI endpoint, and where intake's time goes.

    uv run python -m bench.intake_ceiling                      # both servers, closed loop, 64 clients
    uv run python -m bench.intake_ceiling --profile 2000       # also cProfile the app in-process (ASGI)
    uv run python -m bench.intake_ceiling --prefill 300        # intake measured with 300,000 reports stored first

Each server runs alone under uvicorn in its own process, with the same server settings (intake through
``jiesu serve`` on SQLite in a temporary folder, the bare app through uvicorn's command line), one after the
other so they do not share the cores. Prints requests/s, the share of bare, and the server process's CPU
milliseconds per request, which moves less than the rate when others use the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import httpx

from bench import targets
from bench.corpus import Corpus
from bench.loadgen import HEADERS, PYTHON, SERVICE_ENV, closed_loop, create_key, free_port, ready, say, start
from bench.procstat import Watched

WORKERS = 64


def batch_bodies(corpus: Corpus, *, batches: int, size: int) -> list[bytes]:
    """Bodies for the batch endpoint, each of ``size`` new reports, drawn and encoded before any clock starts."""
    return [
        json.dumps({"reports": [corpus.report() for _ in range(size)]}, ensure_ascii=False).encode()
        for _ in range(batches)
    ]


async def post_all(url: str, bodies: list[bytes], *, workers: int) -> int:
    """Post every body with ``workers`` clients back to back; the reports accepted."""
    accepted = 0
    queue = list(reversed(bodies))
    headers = HEADERS | {"Content-Type": "application/json"}
    async with aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(total=120)) as http:

        async def worker() -> None:
            nonlocal accepted
            while queue:
                body = queue.pop()
                async with http.post(f"{url}/v1/reports/batch", data=body) as answer:
                    if answer.status != 200:
                        raise SystemExit(f"intake refused a batch: {answer.status} {await answer.text()}")
                    accepted += (await answer.json())["accepted"]

        await asyncio.gather(*(worker() for _ in range(workers)))
    return accepted


async def prepared_loop(url: str, bodies: list[bytes], *, seconds: float, workers: int) -> tuple[float, int]:
    """Requests/s and 201s with ``workers`` clients posting bodies encoded beforehand (a lighter client than
    ``loadgen.closed_loop``, whose per-request drawing and encoding would cap the bare app on 2 cores)."""
    done = sent = 0
    stop_at = time.monotonic() + seconds
    headers = HEADERS | {"Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=workers)
    async with aiohttp.ClientSession(
        headers=headers, connector=connector, timeout=aiohttp.ClientTimeout(total=30)
    ) as http:

        async def worker() -> None:
            nonlocal done, sent
            while time.monotonic() < stop_at and sent < len(bodies):
                body = bodies[sent]
                sent += 1
                async with http.post(f"{url}/v1/reports", data=body) as answer:
                    await answer.read()
                    done += answer.status == 201

        began = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(workers)))
        return round(done / (time.monotonic() - began), 1), done


def _intake_env(var: Path, database_url: str | None = None) -> dict[str, str]:
    return SERVICE_ENV | {
        "JIESU_AUTH_DATABASE_URL": f"sqlite+aiosqlite:///{var / 'auth.db'}",
        "JIESU_INTAKE_DATABASE_URL": database_url or f"sqlite+aiosqlite:///{var / 'intake.db'}",
        "JIESU_INTAKE_EMBEDDED_BUS_URL": f"sqlite+aiosqlite:///{var / 'bus.db'}",
    }


def _command(server: str, port: int) -> list[str]:
    if server == "intake":
        return [PYTHON, "-m", "services.cli", "--log-level", "warning", "serve", "intake", "--port", str(port)]
    # The settings `jiesu serve` gives uvicorn: its default loop and HTTP parser, no access log.
    return [
        PYTHON,
        "-m",
        "uvicorn",
        "bench.bare_app:app",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
        "--loop",
        "asyncio",
    ]


@asynccontextmanager
async def servers(
    server: str, var: Path, *, database_url: str | None = None, instances: int = 1
) -> AsyncIterator[list[tuple[str, subprocess.Popen[bytes]]]]:
    """Servers of their own, ready for requests: URL and process of each.

    Intake: migrated, with the bench's key, on SQLite in ``var`` or on ``database_url`` (all instances share it).
    """
    env = _intake_env(var, database_url) if server == "intake" else dict(SERVICE_ENV)
    if server == "intake":
        for service in ("intake", "auth"):
            subprocess.run(
                [PYTHON, "-m", "services.cli", "--log-level", "warning", "migrate", service],
                env={**os.environ, **env},
                check=True,
                capture_output=True,
            )
        create_key(env)
    running: list[tuple[str, subprocess.Popen[bytes]]] = []
    try:
        for number in range(instances):
            port = free_port()
            log = var / f"{server}{'' if instances == 1 else f'-{number + 1}'}.log"
            running.append((f"http://127.0.0.1:{port}", start(_command(server, port), log=log, env=env)))
        for url, _ in running:
            await ready(url)
        yield running
    finally:
        for _, proc in running:
            proc.terminate()
        for _, proc in running:
            proc.wait(20)


async def measure(
    server: str, *, var: Path, seconds: float, bodies: list[bytes], corpus: Corpus, prefill: list[bytes]
) -> dict[str, Any]:
    """Closed-loop rate and server CPU per request of one server started for the purpose."""
    async with servers(server, var) as [(url, proc)]:
        await closed_loop(url, corpus, seconds=2, workers=8)  # warm-up: imports, caches, first connections
        if server == "intake" and prefill:
            say(f"  storing {len(prefill)} batches first (not measured)")
            say(f"  {await post_all(url, prefill, workers=3)} reports stored")
        watched = Watched(server, proc.pid)
        watched.begin()
        await asyncio.sleep(2)
        watched.end()
        idle = (watched.cpu_end - watched.cpu_start) / 2  # background work (e.g. consumers polling), no requests
        watched.begin()
        began = time.monotonic()
        rate, requests = await prepared_loop(url, bodies, seconds=seconds, workers=WORKERS)
        elapsed = time.monotonic() - began
        watched.end()
        cpu = watched.cpu_end - watched.cpu_start
        return {
            "rps": rate,
            "server_cpu_ms_per_request": round(cpu * 1000 / requests, 3) if requests else None,
            "server_cpu_share": round(cpu / elapsed, 2),
            "server_idle_cpu_share": round(idle, 3),
        }


async def profile(count: int, *, var: Path, corpus: Corpus, top: int) -> dict[str, Any]:
    """CPU per request of intake in-process (httpx over ASGI, client included) and cProfile's top functions."""
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
    bodies = [corpus.report() for _ in range(count + WORKERS)]
    async with app.router.lifespan_context(app):
        _, key = await app.state.auth.store.create(role="admin", name="profile", rate_per_second=1e6)
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://intake", headers=headers) as http:

            async def send(batch: list[dict[str, Any]]) -> None:
                answers = await asyncio.gather(*(http.post("/v1/reports", json=body) for body in batch))
                refused = [a for a in answers if a.status_code != 201]
                if refused:
                    raise SystemExit(f"intake refused a report: {refused[0].status_code} {refused[0].text}")

            await send(bodies[:WORKERS])  # warm-up
            profiler = cProfile.Profile()
            cpu = time.process_time()
            profiler.enable()
            for begin in range(WORKERS, len(bodies), WORKERS):
                await send(bodies[begin : begin + WORKERS])
            profiler.disable()
            cpu = time.process_time() - cpu
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    return {"requests": count, "cpu_ms_per_request": round(cpu * 1000 / count, 3), "profile": text.getvalue()}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Measure bare, then intake; then profile if asked."""
    corpus = Corpus()
    # Enough new reports (new external ids) for each loop; drawn and encoded before any clock starts.
    bodies = [json.dumps(corpus.report(), ensure_ascii=False).encode() for _ in range(int(args.seconds * 4000))]
    prefill = batch_bodies(corpus, batches=args.prefill, size=1000)
    with tempfile.TemporaryDirectory(prefix="jiesu-ceiling-") as folder:
        var = Path(folder)
        results: dict[str, Any] = {"load_average": os.getloadavg(), "cpus": os.cpu_count()}
        for server in ("bare", "intake"):
            say(f"{server}: closed loop, {WORKERS} clients, {args.seconds}s")
            results[server] = await measure(
                server, var=var, seconds=args.seconds, bodies=bodies, corpus=corpus, prefill=prefill
            )
            say(f"  {results[server]}")
        results["intake_share_of_bare"] = round(results["intake"]["rps"] / results["bare"]["rps"], 3)
        results["load_average_after"] = os.getloadavg()
        if args.profile:
            say(f"in-process profile of {args.profile} reports")
            results["in_process"] = await profile(args.profile, var=var, corpus=corpus, top=args.top)
        HEADERS.clear()
        return results


def main() -> None:
    """Parse arguments, run, print the figures (and the profile)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10, help="length of each closed loop")
    parser.add_argument("--prefill", type=int, default=0, metavar="BATCHES", help="batches of 1,000 stored first")
    parser.add_argument("--profile", type=int, default=0, metavar="REPORTS", help="also profile this many in-process")
    parser.add_argument("--top", type=int, default=30, help="functions shown by the profile")
    parser.add_argument("--skip-servers", action="store_true", help="only the in-process profile")
    args = parser.parse_args()
    if args.skip_servers:
        with tempfile.TemporaryDirectory(prefix="jiesu-ceiling-") as folder:
            found = asyncio.run(profile(args.profile or 2000, var=Path(folder), corpus=Corpus(), top=args.top))
        print(found.pop("profile"))
        print(json.dumps(found))
        return
    results = asyncio.run(run(args))
    results["targets"] = [targets.single_verdict(results["intake_share_of_bare"])]
    text = results.get("in_process", {}).pop("profile", None)
    if text:
        print(text)
    print(json.dumps(results, indent=1))
    for line in targets.lines(results):
        say(line)


if __name__ == "__main__":
    main()

"""Soak: steady load on a distributed deployment while its parts are killed in turn; then the exactly-once audit.

    uv run python -m bench.soak --minutes 5 --rate 10

Starts its own PostgreSQL and Kafka (a temporary JIESU_VAR and free ports, so nothing shared is touched), every
service and every outbox relay as its own process, two dispatch instances in one consumer group. While reports
arrive at a fixed rate it SIGKILLs, one after another on an even schedule, dispatch, the relays, evaluation,
intake, the Kafka broker and PostgreSQL, restarting each after a pause. At the end every report answered 201
must be exactly one case in dispatch and one in evaluation, and evaluation's metrics must equal a recount of
dispatch's cases. Prints progress while it runs and the result as JSON (also written to --out); exits 1 on a
failed audit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from tests.e2e.fleet import SERVICES, Fleet, Load, OwnServer, audit

ROOT = Path(__file__).resolve().parents[1]
VICTIMS = [
    "dispatch-1",
    "intake-relay",
    "kafka",
    "evaluation",
    "dispatch-relay",
    "postgres",
    "dispatch-2",
    "evaluation-relay",
    "intake",
]


def say(message: str) -> None:
    print(f"[soak] {message}", file=sys.stderr, flush=True)


async def soak(args: argparse.Namespace, var: Path) -> dict[str, Any]:
    """Run the deployment, the load and the kills; return what happened and the audit."""
    postgres, kafka = OwnServer("postgres", var / "pg"), OwnServer("kafka", var / "kafka")
    say("starting PostgreSQL and Kafka of the soak's own")
    await asyncio.gather(asyncio.to_thread(postgres.run, "start"), asyncio.to_thread(kafka.run, "start"))
    fleet = Fleet(
        var,
        database_urls={service: postgres.database_url(f"jiesu_{service}") for service in SERVICES},
        kafka=kafka.bootstrap,
        namespace=f"soak{uuid.uuid4().hex[:8]}.",
        dispatchers=2,
    )
    kills: list[dict[str, Any]] = []
    result: dict[str, Any] = {"minutes": args.minutes, "rate": args.rate, "kills": kills, "var": str(var)}
    try:
        await asyncio.to_thread(fleet.start)
        load = Load(fleet.urls["intake"], rate=args.rate)
        stop = asyncio.Event()
        began = time.monotonic()
        posting = asyncio.create_task(load.run(stop))
        progress = asyncio.create_task(_progress(load, began, kills, stop))
        victims = args.victims.split(",")
        step = args.minutes * 60 / (len(victims) + 1)
        for number, victim in enumerate(victims, start=1):
            await _sleep_until(began + number * step)
            say(f"kill -9 {victim}")
            at = round(time.monotonic() - began, 1)
            await _kill_and_restart(victim, fleet=fleet, servers={"postgres": postgres, "kafka": kafka}, args=args)
            kills.append({"victim": victim, "at_s": at, "restarted_after_s": round(time.monotonic() - began - at, 1)})
        await _sleep_until(began + args.minutes * 60)
        stop.set()
        await posting
        await progress
        result["load"] = {"sent": load.sent, "accepted": len(load.accepted), "answers": dict(load.answers)}
        result["refusals"] = load.refusals[:5]
        say(f"load stopped after {time.monotonic() - began:.0f} s; auditing {len(load.accepted)} accepted reports")
        for name in fleet.procs:
            if not name.endswith("-relay"):
                await asyncio.to_thread(fleet.wait_ready, name, timeout=args.audit_timeout)
        audited = time.monotonic()
        try:
            result["audit"] = await audit(fleet.urls, load.accepted, timeout=args.audit_timeout)
            # 503 while PostgreSQL is down and broken connections while intake is down are expected; no other
            # answer is, and a report the sender had to give up on would be a lost one.
            wrong = {k: n for k, n in load.answers.items() if k[0].isdigit() and k not in ("201", "503")}
            result["passed"] = not wrong and "gave up" not in load.answers
            if not result["passed"]:
                result["failure"] = f"unexpected answers: {dict(load.answers)}"
        except AssertionError as failure:
            result["passed"], result["failure"] = False, str(failure)
        result["audit_seconds"] = round(time.monotonic() - audited, 1)
    finally:
        await asyncio.to_thread(fleet.stop)
        await asyncio.gather(asyncio.to_thread(kafka.run, "stop"), asyncio.to_thread(postgres.run, "stop"))
    return result


async def _kill_and_restart(
    victim: str, *, fleet: Fleet, servers: dict[str, OwnServer], args: argparse.Namespace
) -> None:
    if victim in servers:
        await asyncio.to_thread(servers[victim].run, "kill")
        await asyncio.sleep(args.server_outage)
        await asyncio.to_thread(servers[victim].run, "start")
        return
    fleet.kill(victim)
    await asyncio.sleep(args.process_outage)
    fleet.restart(victim)  # it gets ready in its own time; the schedule goes on


async def _progress(load: Load, began: float, kills: list[dict[str, Any]], stop: asyncio.Event) -> None:
    while not stop.is_set():
        await _wait(stop, 10)
        last = kills[-1]["victim"] if kills else "-"
        say(
            f"{time.monotonic() - began:5.0f} s  sent {load.sent}  accepted {len(load.accepted)}  "
            f"answers {dict(load.answers)}  last killed {last}"
        )


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        return


async def _sleep_until(moment: float) -> None:
    await asyncio.sleep(max(0.0, moment - time.monotonic()))


def parser() -> argparse.ArgumentParser:
    options = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    options.add_argument("--minutes", type=float, default=5.0, help="how long the load runs (default 5)")
    options.add_argument("--rate", type=float, default=10.0, help="reports per second (default 10)")
    options.add_argument("--victims", default=",".join(VICTIMS), help="what to kill, in order, comma-separated")
    options.add_argument("--process-outage", type=float, default=3.0, help="seconds a killed process stays down")
    options.add_argument("--server-outage", type=float, default=15.0, help="seconds Kafka or PostgreSQL stays down")
    options.add_argument("--audit-timeout", type=float, default=600.0, help="seconds to wait for everything to settle")
    options.add_argument("--out", type=Path, default=None, help="also write the JSON result here")
    options.add_argument("--keep", action="store_true", help="keep the state directory and logs")
    return options


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    var = Path(tempfile.mkdtemp(prefix="jiesu-soak-"))
    try:
        result = asyncio.run(soak(args, var))
    finally:
        if not args.keep:
            shutil.rmtree(var, ignore_errors=True)
    text = json.dumps(result, ensure_ascii=False, indent=2)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0 if result.get("passed") else 1


if __name__ == "__main__":
    sys.exit(main())

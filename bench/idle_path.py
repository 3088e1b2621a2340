"""Embedded mode's idle cost and each hop of the report path.

    uv run python -m bench.idle_path cpu --seconds 30
    uv run python -m bench.idle_path hops bench/results/<embedded run>/var --last 300

``cpu`` starts ``jiesu up`` in a fresh directory, lets it settle, and reports the CPU its three service processes
burn while nothing happens. ``hops`` reads the databases a ``bench.loadgen --mode embedded`` run left in its var/
and splits the path of its last reports into hops. Each time is stamped before its commit, so a hop includes the
commit (and its fsync) that follows the stamp.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds a process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def idle_cpu(seconds: float, settle: float) -> None:
    var = Path(tempfile.mkdtemp(prefix="jiesu-idle-"))
    log = var / "up.log"
    with log.open("w") as out:
        command = [sys.executable, "-m", "services.cli", "--log-level", "warning", "up", "--var", str(var / "var")]
        up = subprocess.Popen(
            [*command, "--ports", "38101", "38102", "38103"],
            cwd=ROOT,
            stdout=out,
            stderr=out,
        )
    try:
        pids: dict[str, int] = {}
        for _ in range(120):
            time.sleep(1)
            pids = {
                m[1]: int(m[2]) for m in re.finditer(r"jiesu: (\w+) on http://\S+\s+\(process (\d+);", log.read_text())
            }
            if len(pids) == 3:
                break
        time.sleep(settle)
        before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        began = time.monotonic()
        time.sleep(seconds)
        spent = time.monotonic() - began
        used = {name: 100 * (cpu_seconds(pid) - before[name]) / spent for name, pid in pids.items()}
        print(", ".join(f"{name} {share:.1f}%" for name, share in used.items()), f"total {sum(used.values()):.1f}%")
    finally:
        up.send_signal(signal.SIGINT)
        up.wait(30)
        shutil.rmtree(var, ignore_errors=True)


def _stamp(text: str | None) -> float | None:
    return datetime.fromisoformat(text).timestamp() if text else None


def hops(var: Path, last: int) -> None:
    def rows(db: str, sql: str) -> list[tuple[str, ...]]:
        with sqlite3.connect(var / f"{db}.db") as conn:
            return conn.execute(sql).fetchall()

    received = rows(
        "intake",
        "SELECT id, aggregateid, created_at FROM outbox WHERE type LIKE '%report.received%' ORDER BY created_at",
    )[-last:]
    first_on: dict[str, dict[str, float | None]] = {"intake": {}, "unit": {}}
    for key, topic, at in rows("bus", "SELECT key, topic, appended_at FROM bus_messages ORDER BY position"):
        first_on["unit" if ".dispatch.unit." in topic else "intake"].setdefault(key, _stamp(at))
    claimed = {e: _stamp(at) for e, at in rows("dispatch", "SELECT event_id, processed_at FROM inbox")}
    assigned: dict[str, float | None] = {}
    for case, at in rows(
        "dispatch", "SELECT aggregateid, created_at FROM outbox WHERE topic LIKE '%dispatch.unit.%' ORDER BY seq"
    ):
        assigned.setdefault(case, _stamp(at))
    names = ["intake outbox -> bus", "bus -> dispatch consumer", "consumer -> dispatch outbox", "outbox -> unit topic"]
    split: dict[str, list[float]] = {name: [] for name in [*names, "total"]}
    for event_id, case, created in received:
        times = [_stamp(created), first_on["intake"].get(case), claimed.get(event_id), assigned.get(case)]
        times.append(first_on["unit"].get(case))
        if any(t is None for t in times):
            continue
        points = [t for t in times if t is not None]
        for name, start, end in zip(names, points, points[1:], strict=False):
            split[name].append(end - start)
        split["total"].append(points[-1] - points[0])
    for name, values in split.items():
        values.sort()
        if values:
            ms = [values[min(len(values) - 1, int(q * len(values)))] * 1000 for q in (0.5, 0.9, 0.99)]
            print(f"{name:30s} n={len(values)} p50 {ms[0]:.1f} ms, p90 {ms[1]:.1f} ms, p99 {ms[2]:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    cpu = sub.add_parser("cpu", help="CPU an idle `jiesu up` burns")
    cpu.add_argument("--seconds", type=float, default=30)
    cpu.add_argument("--settle", type=float, default=15)
    split = sub.add_parser("hops", help="the report path of an embedded loadgen run, hop by hop")
    split.add_argument("var", type=Path)
    split.add_argument("--last", type=int, default=300, help="how many of the last reports")
    args = parser.parse_args()
    if args.what == "cpu":
        idle_cpu(args.seconds, args.settle)
    else:
        hops(args.var, args.last)


if __name__ == "__main__":
    main()

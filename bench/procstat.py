"""CPU and memory of running processes, read from /proc (Linux)."""

from __future__ import annotations

import contextlib
import cProfile
import io
import os
import pstats
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        children = task / "children"
        if children.exists():
            found += [int(c) for c in children.read_text().split()]
    return found


def tree(pid: int) -> list[int]:
    """A process and all its descendants."""
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        with contextlib.suppress(OSError):
            todo += _children(current)
    return out


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_bytes(pid: int) -> int:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE


def machine_ticks() -> list[int]:
    """The machine's CPU time so far by state (/proc/stat: user, nice, system, idle, iowait, irq, softirq, steal)."""
    return [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]


def machine_shares(before: list[int], after: list[int]) -> dict[str, float]:
    """How the machine's cores spent a window: busy (anything but idle and waiting for the disk), iowait, steal."""
    spent = [b - a for a, b in zip(before, after, strict=True)]
    total = sum(spent) or 1
    _user, _nice, _system, idle, iowait, _irq, _softirq, steal = spent
    return {
        "busy_share": round((total - idle - iowait) / total, 3),
        "iowait_share": round(iowait / total, 3),
        "steal_share": round(steal / total, 3),
    }


@dataclass
class Watched:
    """One named process tree: CPU used and peak resident memory over a run."""

    name: str
    pid: int
    cpu_start: float = 0.0
    cpu_end: float = 0.0
    peak_rss: int = 0
    samples: list[int] = field(default_factory=list)
    children: bool = True  # False: the process alone (the load generator, whose children are the services)

    def _pids(self) -> list[int]:
        return tree(self.pid) if self.children else [self.pid]

    def _cpu(self) -> float:
        total = 0.0
        for pid in self._pids():
            with contextlib.suppress(OSError):
                total += cpu_seconds(pid)
        return total

    def cpu_now(self) -> float:
        """CPU seconds used so far by the process (tree)."""
        return self._cpu()

    def begin(self) -> None:
        self.cpu_start = self._cpu()

    def sample(self) -> None:
        rss = 0
        for pid in self._pids():
            with contextlib.suppress(OSError):
                rss += rss_bytes(pid)
        self.samples.append(rss)
        self.peak_rss = max(self.peak_rss, rss)

    def end(self) -> None:
        self.cpu_end = self._cpu()

    def summary(self, seconds: float, reports: int = 0) -> dict[str, float]:
        """CPU as a share of one core over ``seconds`` and, given the reports carried meanwhile, per report."""
        steady = sorted(self.samples[len(self.samples) // 2 :]) or [0]
        used = self.cpu_end - self.cpu_start
        per_report = {"cpu_ms_per_report": round(1000 * used / reports, 2)} if reports else {}
        return {
            "cpu_percent": round(100 * used / seconds, 1),
            **per_report,
            "peak_rss_mb": round(self.peak_rss / 2**20, 1),
            "steady_rss_mb": round(steady[len(steady) // 2] / 2**20, 1),
        }


@dataclass(frozen=True)
class Timed:
    """What running one piece of work cost this process."""

    cpu: float  # seconds of process CPU (user + system, every thread)
    wall: float  # seconds
    profile: str | None  # cProfile's listing, when one was asked for


async def timed(work: Callable[[], Awaitable[None]], *, profile_sort: str | None = None, lines: int = 30) -> Timed:
    """Run ``work`` and measure it; with ``profile_sort``, under cProfile, listing the top ``lines`` that way."""
    profiler = cProfile.Profile() if profile_sort is not None else None
    wall, cpu = time.perf_counter(), time.process_time()
    if profiler is not None:
        profiler.enable()
    await work()
    if profiler is not None:
        profiler.disable()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    listing = None
    if profiler is not None:
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats(profile_sort or "cumulative").print_stats(lines)
        listing = text.getvalue()
    return Timed(cpu=cpu, wall=wall, profile=listing)

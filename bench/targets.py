"""The speed targets, judged on a run's own figures: met or missed, by how much, and where the CPU went.

The targets (everything sharing one machine: load generator, services, PostgreSQL, Kafka):

- distributed mode sustains 1,000 reports/s for 5 minutes with end-to-end p99 under 250 ms;
- embedded mode sustains 300 reports/s with end-to-end p99 under 250 ms;
- single-report intake reaches at least half the bare FastAPI endpoint's requests/s;
- the batch route accepts at least 10,000 reports/s;
- no service exceeds 200 MB RSS at steady state.

A run below a target's rate does not judge it (``met`` is None), and a run at the rate but shorter than the target's
duration judges only a miss: a light or short run passing proves nothing about the peak. "Why" reads the run's CPU
figures: how busy the cores were, which processes took the CPU per report, what rate that CPU allows on this
machine, and the longest wait between the services.
"""

from __future__ import annotations

from typing import Any

P99_MS = 250.0
RATE = {"embedded": 300.0, "distributed": 1000.0}
SECONDS = {"embedded": 0.0, "distributed": 300.0}
SINGLE_SHARE = 0.5
BATCH_RATE = 10_000.0
RSS_MB = 200.0
SUSTAINED = 0.99  # accepted / offered at or above this (and no failures) is "sustained"
CPU_BOUND = 0.85  # cores busier than this: latency is queueing for CPU
NOTABLE = 0.05  # a share of the cores' time in iowait or steal worth naming


def verdict(target: str, measured: str, met: bool | None, by: str) -> dict[str, Any]:
    """One target's line: what was wanted, what the run measured, whether it was met and by how much."""
    return {"target": target, "measured": measured, "met": met, "by": by}


def load_verdicts(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The sustained-rate and end-to-end p99 targets of the run's mode."""
    mode = results["mode"]
    load, e2e = results["load"], results["end_to_end"]
    rate, seconds = RATE[mode], SECONDS[mode]
    offered, accepted = float(load["offered_rate"]), float(load["accepted_rate"])
    duration = load["requests"] / offered if offered else 0.0
    wanted = f"{mode} mode sustains {rate:,.0f} reports/s" + (f" for {seconds:.0f} s" if seconds else "")
    # Below the rate nothing is judged. At the rate, a miss in a shorter run is a miss (a longer one would not mend
    # it); a pass counts only over the target's whole duration.
    at_rate, long_enough = offered >= rate, duration >= seconds
    untried = (
        f"not judged: this run offered {offered:,.0f}/s for {duration:.0f} s"
        + f" (the target is judged at {rate:,.0f}/s"
        + (f" for {seconds:.0f} s)" if seconds else ")")
    )
    lost = load["failures"] + e2e["missing"]
    sustained = accepted >= SUSTAINED * offered and lost == 0
    measured = f"{accepted:,.1f}/s accepted of {offered:,.0f}/s offered, {lost} failed or missing"
    if not at_rate:
        rate_line = verdict(wanted, measured, None, untried)
    elif not sustained:
        short = f"missed: {1 - accepted / rate:.0%} short ({accepted:,.0f} of {rate:,.0f}/s"
        short += f", lost {lost})" if accepted >= SUSTAINED * offered else ")"
        rate_line = verdict(wanted, measured, False, short)
    elif not long_enough:
        rate_line = verdict(wanted, measured, None, f"not judged: sustained for {duration:.0f} s; {untried[12:]}")
    else:
        rate_line = verdict(wanted, measured, True, f"met: {accepted / rate:.0%} of the target rate")
    p99 = e2e["p99_ms"]
    wanted = f"{mode} end-to-end p99 under {P99_MS:.0f} ms at that rate"
    measured = "no assignment observed" if p99 is None else f"p99 {p99:,.0f} ms (p50 {e2e['p50_ms']:,.0f} ms)"
    if not at_rate or p99 is None:
        p99_line = verdict(wanted, measured, None, untried if not at_rate else "not judged: nothing observed")
    elif p99 >= P99_MS:
        over = f"missed: {p99 - P99_MS:,.0f} ms over, {p99 / P99_MS:.1f}x the limit"
        p99_line = verdict(wanted, measured, False, over)
    elif not long_enough:
        p99_line = verdict(wanted, measured, None, f"not judged: under the limit for {duration:.0f} s; {untried[12:]}")
    else:
        p99_line = verdict(wanted, measured, True, f"met: {P99_MS - p99:,.0f} ms to spare")
    return [rate_line, p99_line]


BESIDE = "not judged here: measured with dispatch and evaluation at work beside intake; `python -m bench.{}` judges it"


def single_verdict(share: float | None, *, alone: bool = True) -> dict[str, Any]:
    """Single-report intake's requests/s as a share of the bare endpoint's, measured side by side.

    ``alone``: intake was the only service running (bench.intake_ceiling); in a load run the other services work
    through what the ceiling's loop accepts, so the figure is shown but not judged.
    """
    wanted = f"single-report intake at least {SINGLE_SHARE:.0%} of bare FastAPI"
    if share is None:
        return verdict(wanted, "not measured", None, "not judged: no ceiling measured in this run")
    measured = f"{share:.1%} of bare"
    if not alone:
        return verdict(wanted, measured, None, BESIDE.format("intake_ceiling"))
    if share >= SINGLE_SHARE:
        return verdict(wanted, measured, True, f"met: {100 * (share - SINGLE_SHARE):.1f} points to spare")
    return verdict(wanted, measured, False, f"missed: {100 * (SINGLE_SHARE - share):.1f} points short")


def batch_verdict(rate: float | None, *, alone: bool = True) -> dict[str, Any]:
    """The batch route's accepted reports per second (``alone`` as for ``single_verdict``)."""
    wanted = f"batch intake at least {BATCH_RATE:,.0f} reports/s"
    if not rate:
        return verdict(wanted, "not measured", None, "not judged: no batch measured in this run")
    measured = f"{rate:,.0f} reports/s"
    if not alone:
        return verdict(wanted, measured, None, BESIDE.format("intake_batch"))
    if rate >= BATCH_RATE:
        return verdict(wanted, measured, True, f"met: {rate / BATCH_RATE - 1:.0%} above")
    return verdict(wanted, measured, False, f"missed: {1 - rate / BATCH_RATE:.0%} short")


def services_of(processes: dict[str, Any]) -> dict[str, Any]:
    """The service processes among a run's watched ones: each service and relay (not the servers, not the tools)."""
    if any(name.startswith("up:") for name in processes):  # embedded: `jiesu up` and each service it runs
        return {name[3:]: figures for name, figures in processes.items() if name.startswith("up:")}
    tools = {"load generator", "postgres", "kafka"}
    return {name: figures for name, figures in processes.items() if name not in tools}


def rss_verdict(processes: dict[str, Any]) -> dict[str, Any]:
    """The largest steady-state RSS of any service process."""
    wanted = f"no service above {RSS_MB:.0f} MB RSS at steady state"
    services = services_of(processes)
    if not services:
        return verdict(wanted, "not measured", None, "not judged: no service process watched")
    name, figures = max(services.items(), key=lambda item: item[1]["steady_rss_mb"])
    largest = figures["steady_rss_mb"]
    measured = f"largest {largest:.0f} MB ({name}; peak {figures['peak_rss_mb']:.0f} MB)"
    if largest <= RSS_MB:
        return verdict(wanted, measured, True, f"met: {RSS_MB - largest:.0f} MB to spare")
    return verdict(wanted, measured, False, f"missed: {largest - RSS_MB:.0f} MB over")


def why(results: dict[str, Any]) -> list[str]:
    """Where a load run's time went: how busy the cores were, CPU per report by process, the longest wait."""
    cpus = results["machine"]["cpus"] or 1
    # Embedded mode watches `jiesu up` (its whole tree) and each service in it: count the tree once.
    whole = {name: f for name, f in results["processes"].items() if not name.startswith("up:")}
    parts = {name: f for name, f in results["processes"].items() if name.startswith("up:") or name != "jiesu-up"}
    ours = sum(f["cpu_percent"] for f in whole.values()) / (100 * cpus)
    busy = results["machine"].get("busy_share", ours)  # the whole machine's, when the run read it
    per_report = {name: f["cpu_ms_per_report"] for name, f in parts.items() if "cpu_ms_per_report" in f}
    total = sum(f.get("cpu_ms_per_report", 0.0) for f in whole.values())
    lines = []
    share = f"the {cpus} cores were {busy:.0%} busy ({ours:.0%} by the run's processes)"
    if busy >= CPU_BOUND:
        lines.append(f"CPU-bound: {share}, so latency is mostly queueing for CPU")
    else:
        lines.append(f"not CPU-bound: {share}; the waits below are the place to look")
    for state in ("iowait", "steal"):
        if results["machine"].get(f"{state}_share", 0.0) >= NOTABLE:
            lines.append(f"the cores spent {results['machine'][f'{state}_share']:.0%} of the run in {state}")
    if total:
        heaviest = sorted(per_report.items(), key=_by_ms)
        ranked = ", ".join(f"{name.removeprefix('up:')} {ms:.2f}" for name, ms in heaviest)
        capacity = 1000 * cpus / total
        rate = RATE[results["mode"]]
        lines.append(f"CPU per report {total:.2f} ms in all: {ranked}")
        needed = 1000 * cpus / rate
        load = results["load"]
        # A run that kept up batched no more than its rate made it (and its idle looks count in): its CPU per report
        # is that rate's and falls as the rate, and each consumer chunk, grows. Only a run that fell behind, its
        # batches as large as they get, shows what the cores can carry at most.
        kept_up = float(load["accepted_rate"]) >= SUSTAINED * float(load["offered_rate"])
        lines.append(
            f"at that CPU the {cpus} cores carry {'' if kept_up else 'at most '}~{capacity:,.0f} reports/s; "
            f"{rate:,.0f}/s needs at most {needed:.2f} ms a report"
            + (f" ({total / needed:.1f}x less)" if total > needed else f" ({1 - total / needed:.0%} to spare)")
        )
        if kept_up:
            lines.append(
                "the run kept up, so its services batched no more than this rate made them (a consumer chunk has a "
                "fixed cost, and idle looks count in): the CPU per report above is this rate's, not a ceiling"
            )
    stages = results.get("stages") or {}
    waits = [
        (f"{service}'s outbox to the bus", s) for service, s in (stages.get("relay_wait") or {}).items() if s["events"]
    ] + [(f"outbox to {group}", s) for group, s in (stages.get("trip_to_consumer") or {}).items() if s["events"]]
    if waits:
        name, longest = max(waits, key=lambda item: item[1]["p99_ms"] or 0.0)
        lines.append(f"longest wait: {name}, p99 {longest['p99_ms']:,.0f} ms (p50 {longest['p50_ms']:,.0f} ms)")
    return lines


def _by_ms(item: tuple[str, float]) -> float:
    return -item[1]


def judge_load(results: dict[str, Any]) -> dict[str, Any]:
    """Every target a load run measures, and why it stands where it does."""
    ceiling = results.get("ceiling") or {}
    targets = [
        *load_verdicts(results),
        single_verdict(ceiling.get("intake_share_of_bare"), alone=False),
        batch_verdict(ceiling.get("batch_reports_per_s"), alone=False),
        rss_verdict(results["processes"]),
    ]
    return {"targets": targets, "why": why(results)}


def lines(judged: dict[str, Any]) -> list[str]:
    """The verdicts and reasons as lines to print."""
    marks = {True: "met", False: "MISSED", None: "not judged"}
    out = [f"[{marks[t['met']]}] {t['target']}: {t['measured']}; {t['by']}" for t in judged.get("targets", [])]
    return out + [f"why: {reason}" for reason in judged.get("why", [])]

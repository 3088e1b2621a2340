"""A load run's verdict on the speed targets: met or missed, by how much, and why."""

from __future__ import annotations

from typing import Any

from bench import targets
from bench.procstat import machine_shares


def _process(cpu_percent: float, ms: float, rss: float) -> dict[str, float]:
    return {"cpu_percent": cpu_percent, "cpu_ms_per_report": ms, "peak_rss_mb": rss + 4, "steady_rss_mb": rss}


def _stage(p50: float, p99: float, events: int = 1000) -> dict[str, float]:
    return {"events": events, "p50_ms": p50, "p99_ms": p99, "max_ms": p99 * 1.5}


def _run(
    mode: str,
    *,
    offered: float,
    accepted: float,
    seconds: float,
    p99: float | None,
    failures: int = 0,
    missing: int = 0,
    processes: dict[str, Any] | None = None,
    machine: dict[str, float] | None = None,
) -> dict[str, Any]:
    """A results document shaped as bench.loadgen writes it."""
    if processes is None:
        processes = {
            "jiesu-up": _process(150.0, 5.6, 470.0),
            "load generator": _process(24.0, 0.8, 100.0),
            "up:intake": _process(58.0, 2.0, 145.0),
            "up:dispatch": _process(60.0, 2.1, 161.0),
            "up:evaluation": _process(42.0, 1.5, 151.0),
        }
    return {
        "mode": mode,
        "machine": {"cpus": 2, **(machine or {})},
        "load": {
            "offered_rate": offered,
            "requests": int(offered * seconds),
            "accepted": int(accepted * seconds),
            "failures": failures,
            "accepted_rate": accepted,
        },
        "end_to_end": {"missing": missing, "p50_ms": None if p99 is None else p99 / 2, "p99_ms": p99},
        "ceiling": {"intake_share_of_bare": 0.253, "batch_reports_per_s": 13515.0},
        "processes": processes,
        "stages": {
            "relay_wait": {"intake": _stage(27, 78), "dispatch": _stage(72, 200)},
            "trip_to_consumer": {"jiesu-dispatch-judge": _stage(48, 118), "jiesu-intake-status": _stage(74, 186)},
        },
    }


def test_a_distributed_run_short_of_the_peak_says_by_how_much_and_why() -> None:
    processes = {
        name: _process(cpu, ms, rss)
        for name, cpu, ms, rss in [
            ("intake", 33.0, 0.74, 120.0),
            ("dispatch", 50.0, 1.14, 150.0),
            ("dispatch-relay", 13.0, 0.30, 90.0),
            ("evaluation", 31.0, 0.71, 140.0),
            ("postgres", 16.0, 0.37, 400.0),  # servers are not services: their RSS is not judged
            ("kafka", 14.0, 0.31, 700.0),
            ("load generator", 33.0, 0.72, 110.0),
        ]
    }
    run = _run("distributed", offered=1000, accepted=618, seconds=300, p99=50_800, missing=12, processes=processes)
    judged = targets.judge_load(run)
    rate, p99, single, batch, rss = judged["targets"]
    assert rate["met"] is False and rate["by"] == "missed: 38% short (618 of 1,000/s)"
    assert p99["met"] is False and p99["by"] == "missed: 50,550 ms over, 203.2x the limit"
    # Measured while dispatch and evaluation worked beside intake: shown, judged only by the benches of intake alone.
    assert single["met"] is None and single["measured"] == "25.3% of bare" and "bench.intake_ceiling" in single["by"]
    assert batch["met"] is None and batch["measured"] == "13,515 reports/s" and "bench.intake_batch" in batch["by"]
    assert rss["met"] is True and rss["measured"].startswith("largest 150 MB (dispatch;")
    why = judged["why"]
    # Without the machine's own figures, the run's processes' sum.
    assert (
        why[0]
        == "CPU-bound: the 2 cores were 95% busy (95% by the run's processes), so latency is mostly queueing for CPU"
    )
    assert why[1].startswith("CPU per report 4.29 ms in all: dispatch 1.14, intake 0.74, load generator 0.72")
    assert (
        why[2]
        == "at that CPU the 2 cores carry at most ~466 reports/s; 1,000/s needs at most 2.00 ms a report (2.1x less)"
    )
    assert why[3] == "longest wait: dispatch's outbox to the bus, p99 200 ms (p50 72 ms)"


def test_an_embedded_run_within_the_limit_is_met() -> None:
    judged = targets.judge_load(_run("embedded", offered=300, accepted=299.4, seconds=30, p99=213.0))
    rate, p99, _single, _batch, rss = judged["targets"]
    assert rate["met"] is True
    assert p99["met"] is True and p99["by"] == "met: 37 ms to spare"
    # `jiesu up` sums its services (470 MB): each service is judged, not the sum.
    assert rss["met"] is True and rss["measured"].startswith("largest 161 MB (dispatch;")
    why = judged["why"]
    assert why[2] == "at that CPU the 2 cores carry ~312 reports/s; 300/s needs at most 6.67 ms a report (4% to spare)"
    # It kept up: its CPU per report is what that rate's batching cost, not a ceiling.
    assert why[3].startswith("the run kept up, so its services batched no more than this rate made them")


def test_a_light_run_does_not_pass_the_peak_targets() -> None:
    # 300/s for 30 s with a fine p99 proves nothing about 1,000/s for 5 minutes.
    judged = targets.judge_load(_run("distributed", offered=300, accepted=299, seconds=30, p99=180.0))
    rate, p99 = judged["targets"][:2]
    assert rate["met"] is None and p99["met"] is None
    assert rate["by"] == "not judged: this run offered 300/s for 30 s (the target is judged at 1,000/s for 300 s)"
    # At the rate but not for long enough: still not judged.
    judged = targets.judge_load(_run("distributed", offered=1000, accepted=1000, seconds=60, p99=180.0))
    assert [t["met"] for t in judged["targets"][:2]] == [None, None]
    assert judged["targets"][0]["by"].startswith("not judged: sustained for 60 s; this run offered 1,000/s")


def test_a_short_run_at_the_rate_that_falls_behind_has_missed() -> None:
    # A minute at 1,000/s that could not keep up: a five-minute run would not do better.
    judged = targets.judge_load(_run("distributed", offered=1000, accepted=680, seconds=60, p99=94_796.0))
    rate, p99 = judged["targets"][:2]
    assert rate["met"] is False and rate["by"] == "missed: 32% short (680 of 1,000/s)"
    assert p99["met"] is False and p99["by"] == "missed: 94,546 ms over, 379.2x the limit"


def test_lost_reports_mean_the_rate_was_not_sustained() -> None:
    for lost in ({"failures": 3}, {"missing": 1}):
        judged = targets.judge_load(_run("embedded", offered=300, accepted=300, seconds=30, p99=120.0, **lost))
        rate = judged["targets"][0]
        assert rate["met"] is False and rate["by"].endswith(f", lost {sum(lost.values())})"), lost
        assert rate["measured"].endswith(f"{sum(lost.values())} failed or missing")


def test_a_service_over_the_memory_limit_is_named() -> None:
    run = _run("embedded", offered=300, accepted=300, seconds=30, p99=120.0)
    run["processes"]["up:evaluation"] = _process(42.0, 1.5, 231.0)
    rss = targets.judge_load(run)["targets"][4]
    assert rss["met"] is False and rss["by"] == "missed: 31 MB over"
    assert rss["measured"].startswith("largest 231 MB (evaluation;")


def test_the_machine_figures_replace_the_processes_sum_and_name_iowait() -> None:
    run = _run(
        "embedded",
        offered=300,
        accepted=300,
        seconds=30,
        p99=300.0,
        machine=machine_shares([100, 0, 50, 1000, 10, 0, 0, 0], [1000, 0, 850, 1150, 110, 0, 0, 0]),
    )
    assert run["machine"] == {"cpus": 2, "busy_share": 0.872, "iowait_share": 0.051, "steal_share": 0.0}
    why = targets.why(run)
    assert (
        why[0]
        == "CPU-bound: the 2 cores were 87% busy (87% by the run's processes), so latency is mostly queueing for CPU"
    )
    assert why[1] == "the cores spent 5% of the run in iowait"
    quiet = _run("embedded", offered=300, accepted=300, seconds=30, p99=300.0, machine={"busy_share": 0.4})
    assert targets.why(quiet)[0].startswith("not CPU-bound: the 2 cores were 40% busy")


def test_the_printed_lines_say_each_verdict() -> None:
    judged = targets.judge_load(_run("embedded", offered=300, accepted=299, seconds=30, p99=335.0))
    printed = targets.lines(judged)
    assert printed[0].startswith("[met] embedded mode sustains 300 reports/s: 299.0/s accepted of 300/s offered")
    assert printed[1] == (
        "[MISSED] embedded end-to-end p99 under 250 ms at that rate: p99 335 ms (p50 168 ms); "
        "missed: 85 ms over, 1.3x the limit"
    )
    assert printed[-1].startswith("why: longest wait:")


def test_the_intake_benches_judge_intake_alone() -> None:
    assert targets.single_verdict(0.253)["by"] == "missed: 24.7 points short"
    assert targets.single_verdict(0.53)["by"] == "met: 3.0 points to spare"
    assert targets.batch_verdict(13515.0)["by"] == "met: 35% above"
    assert targets.batch_verdict(7300.0)["by"] == "missed: 27% short"
    assert targets.batch_verdict(None)["met"] is None

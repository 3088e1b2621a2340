"""Classifier cost per report: model file size, load time, and predict latency (p50/p99) over single texts.

    uv run python bench/judge_bench.py                      # the shipped model, texts from the guide's examples
    uv run python bench/judge_bench.py --data ../shared/datasets/messages_train.csv --model PATH

Texts come from ``--data`` (a CSV with subject, detail) when given, otherwise from the guide's example phrasings
joined into report-sized texts. Each text is judged alone (no batching), after a warm-up, as the judge step does.
Wall-clock percentiles include time the process waited for a core; the CPU-time percentiles do not, and tell the
classifier's own cost when other work shares the machine (the load average is printed to judge that).
"""

from __future__ import annotations

import argparse
import csv
import gc
import json
import os
import random
import statistics
import time
from pathlib import Path

from services.dispatch.classifier import Model, default_model_path
from services.dispatch.classifier.cli import resolve_guide


def guide_texts(n: int, seed: int) -> list[tuple[str, str]]:
    """Report-like texts: one to eight of the guide's example phrasings of random kinds, joined."""
    guide, _ = resolve_guide(None)
    examples = [e for kind in guide.kinds for e in kind.examples]
    rng = random.Random(seed)
    return [("", "，".join(rng.sample(examples, rng.randint(1, 8)))) for _ in range(n)]


def csv_texts(path: Path, n: int, seed: int) -> list[tuple[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        rows = [(r.get("subject") or "", r.get("detail") or "") for r in csv.DictReader(handle)]
    rng = random.Random(seed)
    return [rows[i % len(rows)] for i in rng.sample(range(max(n, len(rows))), n)]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=default_model_path())
    ap.add_argument("--data", type=Path, help="CSV with subject, detail (default: texts from the guide)")
    ap.add_argument("-n", type=int, default=3000, help="texts to time (at least 2000 for a p99)")
    ap.add_argument("--warmup", type=int, default=300)
    ap.add_argument("--loads", type=int, default=5, help="times to load the model for the load time")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()

    load_times = []
    for _ in range(args.loads):
        started = time.perf_counter()
        model = Model.load(args.model)
        load_times.append(time.perf_counter() - started)
    texts = csv_texts(args.data, args.n, args.seed) if args.data else guide_texts(args.n, args.seed)
    for subject, detail in texts[: args.warmup]:
        model.predict(detail, subject=subject)
    gc.collect()
    latencies_ms, cpu_ms = [], []
    for subject, detail in texts:
        started, cpu_started = time.perf_counter_ns(), time.thread_time_ns()
        prediction = model.predict(detail, subject=subject)
        model.lineage(prediction.label)
        cpu_ms.append((time.thread_time_ns() - cpu_started) / 1e6)
        latencies_ms.append((time.perf_counter_ns() - started) / 1e6)
    lengths = [len(subject) + len(detail) for subject, detail in texts]
    result = {
        "model": str(args.model),
        "level": model.level,
        "labels": len(model.labels),
        "features": model.featurizer.n_features,
        "npz_bytes": args.model.with_suffix(".npz").stat().st_size,
        "json_bytes": args.model.with_suffix(".json").stat().st_size,
        "load_ms_median": round(statistics.median(load_times) * 1000, 1),
        "texts": len(texts),
        "text_chars_median": statistics.median(lengths),
        "text_chars_max": max(lengths),
        "predict_ms_p50": round(percentile(latencies_ms, 0.50), 3),
        "predict_ms_p99": round(percentile(latencies_ms, 0.99), 3),
        "predict_ms_max": round(max(latencies_ms), 3),
        "predict_cpu_ms_p50": round(percentile(cpu_ms, 0.50), 3),
        "predict_cpu_ms_p99": round(percentile(cpu_ms, 0.99), 3),
        "load_average_1m": os.getloadavg()[0],
        "cores": os.cpu_count(),
        "source": str(args.data) if args.data else "guide examples",
    }
    print(json.dumps(result, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()

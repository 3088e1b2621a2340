"""``jiesu model train|eval`` and ``jiesu judge``: train, score and apply the message classifier from the shell."""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from services.dispatch.classifier.data import (
    MESSAGE_COLUMNS,
    DataError,
    Message,
    parse_messages,
    read_messages,
    read_table,
)
from services.dispatch.classifier.labels import LabelError
from shared.guide import SEED_GUIDE, Guide, load_guide

if TYPE_CHECKING:  # numpy is imported by the commands that need it, not by every ``jiesu`` start
    from services.dispatch.classifier.model import Model

CITY_GUIDE = SEED_GUIDE.with_name("city_guide.json")
OUTPUT_COLUMNS = ("domain", "category", "kind", "confidence", "decision")
BAD_INPUT = 2
API_KEY_ENV = "JIESU_API_KEY"


def _say(message: str) -> None:
    print(f"jiesu: {message}", file=sys.stderr, flush=True)


class _Refused(Exception):
    """Input the command cannot use; the message says what to fix."""


def resolve_guide(path: Path | None) -> tuple[Guide, Path]:
    """The given guide; else the city guide when it exists and validates; else the seed guide."""
    if path is not None:
        try:
            return load_guide(path), path
        except (OSError, ValueError) as exc:
            raise _Refused(f"cannot use guide {path}: {exc}") from exc
    if CITY_GUIDE.exists():
        try:
            return load_guide(CITY_GUIDE), CITY_GUIDE
        except (OSError, ValueError) as exc:
            _say(f"city guide {CITY_GUIDE} does not validate ({str(exc)[:200]}); using the seed guide")
    return load_guide(SEED_GUIDE), SEED_GUIDE


def _load_model(path: Path | None) -> Model:
    from services.dispatch.classifier import default_model_path
    from services.dispatch.classifier.model import Model

    path = path or default_model_path()
    started = time.perf_counter()
    model = Model.load(path)
    _say(
        f"model {path} ({model.level} level, {len(model.labels)} labels) loaded in {time.perf_counter() - started:.3f}s"
    )
    return model


def _size(path: Path) -> str:
    json_path = path.with_suffix(".json")
    return f"{path.stat().st_size / 1024:.0f} KiB + {json_path.stat().st_size / 1024:.0f} KiB metadata"


def _described(path: Path) -> str:
    """A file's name and the start of its SHA-256, to tell later which file a model was trained on."""
    return f"{path.name} (sha256 {hashlib.sha256(path.read_bytes()).hexdigest()[:16]})"


def _is_url(where: str) -> bool:
    return where.startswith(("http://", "https://"))


def fetch_examples(where: str, *, api_key: str | None) -> tuple[list[Message], str]:
    """Labelled examples from a CSV file or URL (e.g. dispatch's /v1/labelled-examples), and how to name them."""
    if not _is_url(where):
        return read_messages(Path(where), labelled=True), _described(Path(where))
    import httpx

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        answer = httpx.get(where, headers=headers, timeout=60, follow_redirects=True)
    except httpx.HTTPError as exc:
        raise _Refused(f"cannot fetch {where}: {exc}") from exc
    if answer.status_code in (401, 403):
        raise _Refused(f"{where} refused the credentials ({answer.status_code}): pass --api-key or set {API_KEY_ENV}")
    if answer.status_code != 200:
        raise _Refused(f"{where} answered {answer.status_code}: {answer.text[:200]}")
    digest = hashlib.sha256(answer.content).hexdigest()[:16]
    return parse_messages(answer.text, name=where), f"{where} (sha256 {digest})"


def _examples(args: argparse.Namespace) -> tuple[list[Message], list[str]]:
    extra: list[Message] = []
    sources: list[str] = []
    for where in args.labelled_examples or []:
        rows, described = fetch_examples(str(where), api_key=args.api_key or os.environ.get(API_KEY_ENV))
        _say(f"read {len(rows)} labelled examples from {where}")
        extra += rows
        sources.append(described)
    return extra, sources


def cmd_train(args: argparse.Namespace) -> int:
    """Train from a labelled CSV file, or from the guide alone; either with people's labelled examples added."""
    from services.dispatch.classifier.train import train, train_guide_only

    if args.guide_only == bool(args.data):
        raise _Refused("give either --data CSV or --guide-only")
    if args.guide_only and args.include_guide:
        raise _Refused("--include-guide adds the guide to --data; --guide-only already trains on the guide alone")
    guide, guide_path = resolve_guide(args.guide)
    _say(f"guide {guide_path}: {guide.name} {guide.version} ({len(guide.kinds)} kinds)")
    extra, extra_sources = _examples(args)
    added = "".join(f", examples {s}" for s in extra_sources)
    started = time.perf_counter()
    if args.guide_only:
        model = train_guide_only(guide, extra=extra, source=_described(guide_path) + added, progress=_say)
    else:
        messages = read_messages(Path(args.data), labelled=True)
        _say(f"read {len(messages)} rows from {args.data}")
        source = f"{_described(Path(args.data))}, guide {_described(guide_path)}{added}"
        model = train(messages, guide, include_guide=args.include_guide, extra=extra, source=source, progress=_say)
    path = model.save(Path(args.out))
    _say(f"trained in {time.perf_counter() - started:.1f}s; saved {path} ({_size(path)})")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    """Score a model (or k-fold cross-validation) on a labelled CSV file, at the level of its labels."""
    from services.dispatch.classifier.metrics import Report

    messages = read_messages(Path(args.data), labelled=True)
    _say(f"read {len(messages)} rows from {args.data}")
    report: Report
    if args.folds is not None:
        from services.dispatch.classifier.train import cross_validate

        if args.model is not None:
            raise _Refused("--folds trains on the file itself; leave out --model")
        guide, _ = resolve_guide(args.guide)
        try:
            report = cross_validate(messages, guide, folds=args.folds, progress=_say)
        except ValueError as exc:
            raise _Refused(str(exc)) from exc
        names = _names_from_guide(guide)
    else:
        from services.dispatch.classifier.train import evaluate

        model = _load_model(args.model)
        try:
            report = evaluate(model, messages)
        except LabelError:
            raise
        except ValueError as exc:
            raise _Refused(str(exc)) from exc
        names = {code: name for level in model.taxonomy.names.values() for code, name in level.items()}
    print(report.table(names))
    return 0


def _names_from_guide(guide: Guide) -> dict[str, str]:
    return {
        **{d.code: d.name for d in guide.domains},
        **{c.code: c.name for c in guide.categories},
        **{k.code: k.name for k in guide.kinds},
    }


def _default_threshold() -> float:
    from services.dispatch.settings import DispatchSettings

    value: Any = DispatchSettings.model_fields["confidence_threshold"].default
    return float(value)


def cmd_judge(args: argparse.Namespace) -> int:
    """Judge every row of a CSV file: input columns + domain, category, kind, confidence, decision."""
    columns, rows = read_table(Path(args.input), required=MESSAGE_COLUMNS)
    model = _load_model(args.model)
    threshold = _default_threshold() if args.threshold is None else args.threshold
    kept = [c for c in columns if c not in OUTPUT_COLUMNS]
    out_path = Path(args.output)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    decisions = {"dispatch": 0, "triage": 0}
    with out_path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[*kept, *OUTPUT_COLUMNS], extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            prediction = model.predict(row["detail"], subject=row["subject"])
            lineage = model.lineage(prediction.label)
            decision = "dispatch" if prediction.confidence >= threshold else "triage"
            decisions[decision] += 1
            writer.writerow(
                {
                    **{c: row.get(c, "") for c in kept},
                    "domain": lineage.domain,
                    "category": lineage.category or "",
                    "kind": lineage.kind or "",
                    "confidence": f"{prediction.confidence:.4f}",
                    "decision": decision,
                }
            )
    _say(
        f"judged {len(rows)} rows into {out_path}: {decisions['dispatch']} dispatch, {decisions['triage']} triage "
        f"(threshold {threshold:.2f})"
    )
    return 0


def _guarded(command: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        from services.dispatch.classifier.model import ModelFileError

        try:
            result: int = command(args)
        except (_Refused, DataError, LabelError, ModelFileError) as exc:
            _say(f"error: {exc}")
            return BAD_INPUT
        return result

    run.__doc__ = command.__doc__
    return run


def add_model_commands(sub: Any) -> None:
    """Register ``model train``, ``model eval`` and ``judge`` on the top-level subcommands."""
    model = sub.add_parser("model", help="train and score the message classifier")
    msub = model.add_subparsers(dest="model_command", required=True)

    train = msub.add_parser("train", help="train from a labelled CSV (id, subject, detail, label) or the guide")
    train.add_argument("--data", type=Path, help="labelled CSV; labels are domain, category or kind codes or names")
    train.add_argument("--guide-only", action="store_true", help="train on the guide's own texts (kind level)")
    train.add_argument("--guide", type=Path, help="guide file (default: the city guide if valid, else the seed)")
    train.add_argument("--include-guide", action="store_true", help="add the guide's texts to --data")
    train.add_argument(
        "--labelled-examples",
        action="append",
        metavar="PATH_OR_URL",
        help="add people's triage decisions (CSV id, subject, detail, label; e.g. dispatch's "
        "/v1/labelled-examples) at the model's level or finer; repeatable",
    )
    train.add_argument("--api-key", help=f"credential for --labelled-examples URLs (default: ${API_KEY_ENV})")
    train.add_argument("--out", type=Path, required=True, help="model path (.npz, with a .json beside it)")
    train.set_defaults(run=_guarded(cmd_train))

    score = msub.add_parser("eval", help="score a model, or k-fold cross-validation, on a labelled CSV")
    score.add_argument("--data", type=Path, required=True)
    score.add_argument("--model", type=Path, help="model path (default: the shipped model)")
    score.add_argument("--folds", type=int, help="cross-validate by training on the file itself, in K folds")
    score.add_argument("--guide", type=Path, help="guide for --folds (default: the city guide if valid, else the seed)")
    score.set_defaults(run=_guarded(cmd_eval))

    judge = sub.add_parser("judge", help="judge a CSV file of messages in bulk with the classifier")
    judge.add_argument("--input", type=Path, required=True, help="CSV with id, subject, detail")
    judge.add_argument("--output", type=Path, required=True)
    judge.add_argument("--model", type=Path, help="model path (default: the shipped model)")
    judge.add_argument("--threshold", type=float, help="dispatch at or above this confidence (default: settings)")
    judge.set_defaults(run=_guarded(cmd_judge))

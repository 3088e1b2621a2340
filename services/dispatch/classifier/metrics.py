"""Scores of a classifier on labelled messages: per-class precision/recall/F1, accuracy, macro-F1, calibration."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class ClassScore:
    label: str
    support: int
    precision: float
    recall: float
    f1: float


@dataclass(frozen=True)
class Report:
    """Scores over the labels that occur in the truth (predicted-only labels are listed with support 0)."""

    classes: list[ClassScore]
    accuracy: float
    macro_f1: float
    n: int
    ece: float

    def table(self, names: dict[str, str] | None = None) -> str:
        """A plain-text table, one line per label (its name last), then ECE and the summary line."""
        names = names or {}
        width = max([len(c.label) for c in self.classes] + [5])
        lines = [f"{'label':<{width}}  support  precision  recall      f1  name"]
        for c in self.classes:
            name = names.get(c.label, "")
            lines.append(
                f"{c.label:<{width}}  {c.support:7d}  {c.precision:9.4f}  {c.recall:6.4f}  {c.f1:6.4f}  {name}".rstrip()
            )
        lines.append(f"ece={self.ece:.4f}")
        lines.append(self.summary())
        return "\n".join(lines)

    def summary(self) -> str:
        return f"accuracy={self.accuracy:.4f} macro_f1={self.macro_f1:.4f} n={self.n}"


def expected_calibration_error(confidence: Sequence[float], correct: Sequence[bool], *, bins: int = 15) -> float:
    """Σ over equal-width confidence bins of |accuracy − mean confidence| × share of predictions in the bin."""
    conf = np.asarray(confidence, dtype=np.float64)
    hit = np.asarray(correct, dtype=np.float64)
    if not len(conf):
        return 0.0
    which = np.minimum((conf * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            total += abs(float(hit[mask].mean()) - float(conf[mask].mean())) * mask.sum() / len(conf)
    return float(total)


def score(truth: Sequence[str], predicted: Sequence[str], confidence: Sequence[float]) -> Report:
    """Per-class and overall scores; macro-F1 averages over the labels present in the truth."""
    if len(truth) != len(predicted) or len(truth) != len(confidence):
        raise ValueError("truth, predictions and confidences must have the same length")
    t = np.asarray(truth, dtype=object)
    p = np.asarray(predicted, dtype=object)
    present = sorted(set(truth))
    classes = []
    for label in present + sorted(set(predicted) - set(present)):
        tp = int(np.sum((t == label) & (p == label)))
        support = int(np.sum(t == label))
        predicted_n = int(np.sum(p == label))
        precision = tp / predicted_n if predicted_n else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        classes.append(ClassScore(label=label, support=support, precision=precision, recall=recall, f1=f1))
    correct = t == p
    return Report(
        classes=classes,
        accuracy=float(correct.mean()) if len(t) else 0.0,
        macro_f1=float(np.mean([c.f1 for c in classes if c.support])) if present else 0.0,
        n=len(t),
        ece=expected_calibration_error(confidence, correct.tolist()),
    )

"""Judging (判): emergencies, a trusted code from the source, and a text classifier over the guide."""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from services.dispatch.classifier import Model
from shared.guide import Guide, Kind

Decision = Literal["dispatch", "triage", "transfer", "refuse"]
_CJK_OR_WORD = re.compile(r"[\u4e00-\u9fff]|[A-Za-z0-9]+")


def features(text: str) -> Counter[str]:
    """Character unigrams and bigrams of Chinese text (words for Latin letters and digits)."""
    tokens = _CJK_OR_WORD.findall(text.lower())
    grams = Counter(tokens)
    grams.update(a + b for a, b in itertools.pairwise(tokens))
    return grams


def _any_of(keywords: Iterable[str]) -> Callable[[str], bool]:
    """Whether a text contains any of the keywords (an empty keyword is in every text)."""
    words = sorted(set(keywords), key=len, reverse=True)
    if not words:
        return lambda _text: False
    if "" in words:
        return lambda _text: True
    pattern = re.compile("|".join(map(re.escape, words)))
    return lambda text: pattern.search(text) is not None


@dataclass(frozen=True, slots=True)
class Judgement:
    """What the judge step decided, with its confidence and why."""

    kind: Kind | None
    confidence: float
    decision: Decision
    method: str
    reasons: tuple[str, ...]
    transfer_to: str | None = None


class GuideClassifier:
    """TF-IDF centroids of each kind's name, keywords and example phrasings; cosine similarity."""

    def __init__(self, guide: Guide) -> None:
        self.guide = guide
        docs = {
            k.code: features(" ".join([k.name, k.description, *k.keywords, *k.keywords, *k.examples]))
            for k in guide.kinds
        }
        df: Counter[str] = Counter()
        for grams in docs.values():
            df.update(grams.keys())
        n = len(docs)
        self.idf = {g: math.log((1 + n) / (1 + c)) + 1 for g, c in df.items()}
        self.centroids = {code: self._vector(grams) for code, grams in docs.items()}

    def _vector(self, grams: Counter[str]) -> dict[str, float]:
        vec = {g: (1 + math.log(c)) * self.idf.get(g, 0.0) for g, c in grams.items() if g in self.idf}
        norm = math.sqrt(sum(v * v for v in vec.values())) or 1.0
        return {g: v / norm for g, v in vec.items()}

    def rank(self, text: str) -> list[tuple[str, float]]:
        """Kinds by similarity to the text, best first."""
        vec = self._vector(features(text))
        scores = [
            (code, sum(weight * centroid.get(g, 0.0) for g, weight in vec.items()))
            for code, centroid in self.centroids.items()
        ]
        return sorted(scores, key=lambda pair: pair[1], reverse=True)

    def predict(self, text: str, *, subject: str = "") -> tuple[Kind, float]:
        """The best kind and a confidence in [0, 1] (softmax over similarities)."""
        if subject:
            text = f"{subject} {text}"
        ranked = self.rank(text)
        top = ranked[0][1]
        weights = [math.exp(12 * (score - top)) for _, score in ranked]
        confidence = weights[0] / sum(weights) if top > 0 else 0.0
        return self.guide.kind_by_code[ranked[0][0]], confidence


class ModelClassifier:
    """The trained classifier over a guide; when the model is coarser than kinds, the guide picks the kind within."""

    def __init__(self, guide: Guide, model: Model) -> None:
        known = {
            "kind": set(guide.kind_by_code),
            "category": set(guide.category_by_code),
            "domain": {d.code for d in guide.domains},
        }[model.level]
        missing = [label for label in model.labels if label not in known]
        if missing:
            raise ValueError(
                f"the model's {model.level}s {missing[:5]} are not in guide {guide.version}; "
                "train it on this guide (jiesu model train --guide-only --guide ...)"
            )
        self.guide = guide
        self.model = model
        # Only a domain or category model needs the guide's examples to pick a kind inside its label: built for
        # a kind model too, they would hold some 16 MB for nothing.
        self.fallback = GuideClassifier(guide) if model.level != "kind" else None

    def predict(self, text: str, *, subject: str = "") -> tuple[Kind, float]:
        """The best kind and its calibrated probability."""
        prediction = self.model.predict(text, subject=subject)
        if self.model.level == "kind":
            return self.guide.kind_by_code[prediction.label], prediction.confidence

        # A coarser model: the best kind of the guide inside the predicted domain or category.
        def group(kind: Kind) -> str:
            return kind.category if self.model.level == "category" else self.guide.domain_of(kind)

        assert self.fallback is not None
        joined = f"{subject} {text}"
        for code, _score in self.fallback.rank(joined):
            kind = self.guide.kind_by_code[code]
            if group(kind) == prediction.label:
                return kind, prediction.confidence
        return self.fallback.predict(joined)


class Judge:
    """The judge pipeline for one guide."""

    def __init__(self, guide: Guide, *, threshold: float, model: Model | None = None) -> None:
        self.guide = guide
        self.threshold = threshold
        self.classifier: GuideClassifier | ModelClassifier = (
            ModelClassifier(guide, model) if model is not None else GuideClassifier(guide)
        )
        self._emergencies = [k for k in guide.kinds if k.transfer_to]
        # One search tells whether any keyword occurs at all; the ordered loops below say which one counts.
        self._any_emergency = _any_of(kw for kind in self._emergencies for kw in kind.keywords)
        self._any_out_of_scope = _any_of(kw for rule in guide.out_of_scope for kw in rule.keywords)

    def judge(self, *, text: str, kind_code: str | None, source: str, subject: str = "") -> Judgement:
        """Decide kind and what to do with the report."""
        whole = f"{subject} {text}" if subject else text
        for kind in self._emergencies if self._any_emergency(whole) else ():
            hit = next((kw for kw in kind.keywords if kw in whole), None)
            if hit:
                return Judgement(
                    kind=kind,
                    confidence=1.0,
                    decision="transfer",
                    method="emergency-keyword",
                    reasons=(f"emergency keyword {hit!r}: transfer to {kind.transfer_to}",),
                    transfer_to=kind.transfer_to,
                )
        for rule in self.guide.out_of_scope if self._any_out_of_scope(whole) else ():
            hit = next((kw for kw in rule.keywords if kw in whole), None)
            if hit:
                return Judgement(
                    kind=None,
                    confidence=1.0,
                    decision="refuse",
                    method="out-of-scope",
                    reasons=(f"{rule.code} {rule.name} ({hit!r}): {rule.reason}",),
                )
        predicted, confidence = self.classifier.predict(text, subject=subject)
        if kind_code:
            trusted = self.guide.kind_by_code.get(kind_code)
            if trusted is None:
                reason = f"{source} sent unknown kind code {kind_code}"
            elif trusted.code == predicted.code or trusted.category == predicted.category or confidence < 0.9:
                return Judgement(
                    kind=trusted,
                    confidence=max(confidence, 0.9) if trusted.code == predicted.code else 0.9,
                    decision="dispatch",
                    method="source-code",
                    reasons=(f"kind {kind_code} given by the {source} and consistent with the text",),
                )
            else:
                reason = f"{source} picked {kind_code} but the text reads as {predicted.code} ({confidence:.2f})"
            return Judgement(
                kind=predicted,
                confidence=confidence,
                decision="triage",
                method="source-code",
                reasons=(reason,),
            )
        if predicted.transfer_to and confidence >= self.threshold:
            return Judgement(
                kind=predicted,
                confidence=confidence,
                decision="transfer",
                method="classifier",
                reasons=(
                    f"reads as the emergency {predicted.code} {predicted.name}: transfer to {predicted.transfer_to}",
                ),
                transfer_to=predicted.transfer_to,
            )
        if confidence < self.threshold:
            return Judgement(
                kind=predicted,
                confidence=confidence,
                decision="triage",
                method="classifier",
                reasons=(f"confidence {confidence:.2f} below threshold {self.threshold:.2f}",),
            )
        return Judgement(
            kind=predicted,
            confidence=confidence,
            decision="dispatch",
            method="classifier",
            reasons=(f"classified as {predicted.code} {predicted.name} ({confidence:.2f})",),
        )

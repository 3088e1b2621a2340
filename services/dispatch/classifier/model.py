"""A trained message classifier: shared features, one linear head per level, calibrated; numpy only.

A model has a domain head and, when it knows finer labels, one head at its own level (category or kind):
p(kind | x) = p(domain | x) · p(kind | its domain, x), each factor a temperature-scaled softmax of linear scores.
On disk a model is two files side by side: ``NAME.npz`` (arrays only, never pickled objects) and ``NAME.json``
(labels, levels, feature settings, temperatures, taxonomy, and how and when it was trained).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from services.dispatch.classifier.features import NORMALIZATION, FeatureConfig, Featurizer
from services.dispatch.classifier.labels import LEVELS, Level, Lineage, Taxonomy

FORMAT = "jiesu-text-classifier"
FORMAT_VERSION = 1
_HEAD_ARRAYS = ("intercepts", "matrix", "indptr", "classes", "weights")

Probs = NDArray[np.float64]


class ModelFileError(ValueError):
    """A model file that is missing, unreadable or of another format."""


@dataclass(frozen=True, slots=True)
class Prediction:
    """The best label at one level, its calibrated probability, and the most probable labels, best first."""

    label: str
    confidence: float
    ranked: list[tuple[str, float]]
    level: Level


@dataclass(frozen=True)
class LinearWeights:
    """Scores = intercepts + Σ_j x_j · w_j: a dense (features × labels) matrix when every weight is kept, else the
    kept weights stored by feature (CSR: ``indptr``, ``classes``, ``weights``)."""

    intercepts: NDArray[np.float32]
    matrix: NDArray[np.float32] | None = None
    indptr: NDArray[np.int64] | None = None
    classes: NDArray[np.signedinteger[Any]] | None = None
    weights: NDArray[np.float32] | None = None

    def __post_init__(self) -> None:
        if (self.matrix is None) == (self.indptr is None or self.classes is None or self.weights is None):
            raise ValueError("give either a dense matrix or all three CSR arrays")

    @property
    def n_features(self) -> int:
        return len(self.matrix) if self.matrix is not None else len(self.indptr) - 1  # type: ignore[arg-type]

    @property
    def n_weights(self) -> int:
        return self.matrix.size if self.matrix is not None else len(self.weights)  # type: ignore[arg-type]

    def arrays(self) -> dict[str, NDArray[Any]]:
        """The arrays that define the weights, by name."""
        names = ("intercepts", "matrix", "indptr", "classes", "weights")
        return {name: getattr(self, name) for name in names if getattr(self, name) is not None}

    def scores(self, idx: NDArray[np.intp], values: NDArray[np.float32]) -> Probs:
        if self.matrix is not None:
            dense: Probs = self.intercepts.astype(np.float64) + values @ self.matrix[idx]
            return dense
        assert self.indptr is not None and self.classes is not None and self.weights is not None
        starts = self.indptr[idx]
        counts = self.indptr[idx + 1] - starts
        total = int(counts.sum())
        out = self.intercepts.astype(np.float64)
        if total:
            offsets = np.repeat(starts - np.cumsum(counts) + counts, counts) + np.arange(total)
            contrib = np.repeat(values, counts) * self.weights[offsets]
            out = out + np.bincount(self.classes[offsets], weights=contrib, minlength=len(self.intercepts))
        return out

    @classmethod
    def from_dense(
        cls, coef: NDArray[np.floating[Any]], intercepts: NDArray[np.floating[Any]], *, per_class: int | None
    ) -> LinearWeights:
        """From a (labels × features) matrix, keeping each label's ``per_class`` largest |weights| (all if None)."""
        coef = np.asarray(coef, dtype=np.float32)
        intercepts = np.asarray(intercepts, dtype=np.float32)
        n_classes, n_features = coef.shape
        if per_class is None or per_class >= n_features:
            return cls(intercepts=intercepts, matrix=np.ascontiguousarray(coef.T))
        cut = np.partition(np.abs(coef), n_features - per_class, axis=1)[:, n_features - per_class]
        keep = (np.abs(coef) >= cut[:, None]) & (coef != 0)
        feats, classes = np.nonzero(keep.T)
        indptr = np.zeros(n_features + 1, dtype=np.int64)
        indptr[1:] = np.cumsum(np.bincount(feats, minlength=n_features))
        return cls(
            intercepts=intercepts,
            indptr=indptr,
            classes=classes.astype(np.int16) if n_classes < 2**15 else classes.astype(np.int32),
            weights=coef.T[keep.T].astype(np.float32),
        )


@dataclass(frozen=True)
class Head:
    """Labels of one level, their linear weights and softmax temperature.

    A head below the domain head has its labels ordered by parent; ``parents[i]`` is the index of label i's
    parent among the previous head's labels, and ``starts`` where each parent's run of labels begins.
    """

    level: Level
    labels: list[str]
    weights: LinearWeights
    temperature: float
    parents: NDArray[np.intp] | None = None

    def __post_init__(self) -> None:
        if len(self.labels) != len(self.weights.intercepts) or self.temperature <= 0:
            raise ValueError(f"{self.level} head: one intercept per label and a positive temperature are needed")
        if self.parents is not None and (len(self.parents) != len(self.labels) or np.any(np.diff(self.parents) < 0)):
            raise ValueError(f"{self.level} head: labels must be grouped by parent")

    @cached_property
    def _groups(self) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
        """Where each parent's run of labels starts, and each label's run."""
        assert self.parents is not None
        starts = np.flatnonzero(np.r_[True, self.parents[1:] != self.parents[:-1]])
        return starts, np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(self.parents)]))

    def probabilities(self, idx: NDArray[np.intp], values: NDArray[np.float32], above: Probs | None) -> Probs:
        """Softmax over all labels, or, under a parent distribution, p(parent) · softmax within each parent."""
        z = self.weights.scores(idx, values) / self.temperature
        if above is None or self.parents is None:
            e = np.exp(z - z.max())
            result: Probs = e / e.sum()
            return result
        starts, group = self._groups
        e = np.exp(z - np.maximum.reduceat(z, starts)[group])
        within = e / np.add.reduceat(e, starts)[group]
        conditional: Probs = above[self.parents] * within
        return conditional


class Model:
    """Text → calibrated probabilities over the domains, categories or kinds of the guide."""

    def __init__(
        self, *, featurizer: Featurizer, heads: list[Head], taxonomy: Taxonomy, meta: dict[str, Any] | None = None
    ) -> None:
        if not heads or heads[0].level != "domain":
            raise ValueError("a model's first head is at domain level")
        self.featurizer = featurizer
        self.heads = heads
        self.taxonomy = taxonomy
        self.level: Level = heads[-1].level
        self.labels = heads[-1].labels
        self.meta: dict[str, Any] = dict(meta or {})
        self._rollup: dict[Level, tuple[list[str], NDArray[np.intp]]] = {}

    def probabilities(self, text: str, *, subject: str = "") -> Probs:
        """Calibrated probabilities of the model's labels (``model.labels``), summing to 1."""
        idx, values = self.featurizer.transform(subject, text)
        probs: Probs | None = None
        for head in self.heads:
            probs = head.probabilities(idx, values, probs)
        assert probs is not None
        return probs

    def rollup(self, probs: Probs, level: Level) -> tuple[list[str], Probs]:
        """Labels of the same or a coarser level and their probabilities (sums over each label's descendants)."""
        if level == self.level:
            return self.labels, probs
        if LEVELS.index(level) > LEVELS.index(self.level):
            raise ValueError(f"a {self.level} model cannot tell {level}s")
        if level not in self._rollup:
            parents = [self.taxonomy.up(label, level=self.level, to=level) for label in self.labels]
            targets = sorted(set(parents))
            index = {code: i for i, code in enumerate(targets)}
            self._rollup[level] = (targets, np.array([index[p] for p in parents], dtype=np.intp))
        targets, parent_idx = self._rollup[level]
        return targets, np.bincount(parent_idx, weights=probs, minlength=len(targets)).astype(np.float64)

    def predict(self, text: str, *, subject: str = "", level: Level | None = None, top: int | None = 10) -> Prediction:
        """The best label at the model's level (or summed up to a coarser one) with its probability.

        ``ranked`` holds the ``top`` most probable labels, best first (every label when ``top`` is None).
        """
        level = level or self.level
        labels, probs = self.rollup(self.probabilities(text, subject=subject), level)
        if top is not None and top < len(probs):
            best = np.argpartition(-probs, top - 1)[:top]
            order = best[np.argsort(-probs[best], kind="stable")]
        else:
            order = np.argsort(-probs, kind="stable")
        ranked = list(zip([labels[i] for i in order], probs[order].tolist(), strict=True))
        return Prediction(label=ranked[0][0], confidence=ranked[0][1], ranked=ranked, level=level)

    def lineage(self, label: str, level: Level | None = None) -> Lineage:
        """Domain, category and kind codes of a label (levels finer than the label's own are None)."""
        return self.taxonomy.lineage(label, level or self.level)

    def name(self, code: str, level: Level | None = None) -> str:
        """The guide's name for a code."""
        return self.taxonomy.names[level or self.level][code]

    def save(self, path: Path) -> Path:
        """Write ``path`` (.npz arrays) and its .json metadata beside it; returns the .npz path."""
        path = Path(path).with_suffix(".npz")
        path.parent.mkdir(parents=True, exist_ok=True)
        f = self.featurizer
        arrays: dict[str, NDArray[Any]] = {"alphabet": f.alphabet, "keys": f.keys, "idf": f.idf}
        for i, head in enumerate(self.heads):
            arrays |= {f"h{i}_{name}": array for name, array in head.weights.arrays().items()}
            if head.parents is not None:
                arrays[f"h{i}_parents"] = head.parents
        buffer = io.BytesIO()
        np.savez_compressed(buffer, allow_pickle=False, **arrays)
        path.write_bytes(buffer.getvalue())
        meta = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "level": self.level,
            "labels": self.labels,
            "heads": [
                {"level": h.level, "temperature": h.temperature, "labels": h.labels, "calibration": "temperature"}
                for h in self.heads
            ],
            "features": {
                "ngram_max": f.config.ngram_max,
                "min_df": f.config.min_df,
                "subject_weight": f.config.subject_weight,
                "normalization": NORMALIZATION,
                "n_features": f.n_features,
            },
            **{k: v for k, v in self.meta.items() if k not in _OWN_KEYS},
            "taxonomy": self.taxonomy.to_json(),
        }
        path.with_suffix(".json").write_text(json.dumps(meta, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: Path) -> Model:
        """Read a model written by :meth:`save` (numpy only, no pickle)."""
        path = Path(path).with_suffix(".npz")
        try:
            meta = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
            if meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
                raise ModelFileError(f"{path} is not a {FORMAT} model of version {FORMAT_VERSION}")
            if meta["features"]["normalization"] != NORMALIZATION:
                raise ModelFileError(f"{path} was made by an incompatible version of the classifier")
            with np.load(path, allow_pickle=False) as data:
                arrays = {name: data[name] for name in data.files}
            feats = meta["features"]
            config = FeatureConfig(
                ngram_max=feats["ngram_max"], min_df=feats["min_df"], subject_weight=feats["subject_weight"]
            )
            featurizer = Featurizer(config=config, alphabet=arrays["alphabet"], keys=arrays["keys"], idf=arrays["idf"])
            heads = []
            for i, head in enumerate(meta["heads"]):
                weights = LinearWeights(**{n: arrays[f"h{i}_{n}"] for n in _HEAD_ARRAYS if f"h{i}_{n}" in arrays})
                if weights.n_features != featurizer.n_features:
                    raise ModelFileError(f"{path}: the {head['level']} weights and the vocabulary disagree")
                heads.append(
                    Head(
                        level=head["level"],
                        labels=list(head["labels"]),
                        weights=weights,
                        temperature=float(head["temperature"]),
                        parents=arrays.get(f"h{i}_parents"),
                    )
                )
            extra = {k: v for k, v in meta.items() if k not in _OWN_KEYS}
            return cls(featurizer=featurizer, heads=heads, taxonomy=Taxonomy.from_json(meta["taxonomy"]), meta=extra)
        except ModelFileError:
            raise
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelFileError(f"cannot load model {path}: {exc}") from exc


_OWN_KEYS = {"format", "format_version", "level", "labels", "heads", "features", "taxonomy"}

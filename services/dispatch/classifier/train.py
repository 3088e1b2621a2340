"""Training (needs scikit-learn): NB-weighted linear SVMs over character n-grams, temperature-calibrated.

Method (chosen by 5-fold cross-validation, see docs/benchmarks.md): TF-IDF of character 1..n-grams with
sublinear tf; for each label a one-vs-rest linear SVM on the features scaled by their naive-Bayes log-count ratio
(NBSVM, Wang & Manning 2012), folded back into one linear weight per (feature, label); a softmax temperature
fitted on out-of-fold scores so that the probabilities are calibrated.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from services.dispatch.classifier.data import Message
from services.dispatch.classifier.features import FeatureConfig, Featurizer
from services.dispatch.classifier.labels import LEVELS, LabelError, Level, Taxonomy, guide_rows, rows_at_level
from services.dispatch.classifier.metrics import Report, score
from services.dispatch.classifier.model import Head, LinearWeights, Model
from shared.guide import Guide

Progress = Callable[[str], None]
Method = Literal["nbsvm", "svm", "logreg"]
Doc = tuple[str, str]


def _quiet(_: str) -> None:
    pass


@dataclass(frozen=True)
class TrainConfig:
    """Features, learner and calibration."""

    features: FeatureConfig = field(default_factory=FeatureConfig)
    method: Method = "nbsvm"
    c: float = 10.0
    nb_alpha: float = 1.0
    calibration_folds: int = 5
    # A category or kind head keeps only each label's largest weights: on the city guide 200 per kind scores the
    # same held-out accuracy as 1,800 (0.651 vs 0.649) at a fifth of the file and of the predict time.
    fine_weights_per_label: int | None = 200
    seed: int = 0


MESSAGES_CONFIG = TrainConfig()
GUIDE_CONFIG = TrainConfig(method="svm", c=1.0, features=FeatureConfig(ngram_max=2, min_df=1), calibration_folds=3)


def _version() -> str:
    try:
        return metadata.version("jiesu")
    except metadata.PackageNotFoundError:  # pragma: no cover - a source tree that was never installed
        return "unknown"


def _sklearn() -> Any:
    try:
        import sklearn  # type: ignore[import-untyped]
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise RuntimeError("training needs scikit-learn (a development dependency): run `uv sync`") from exc
    return sklearn


def _matrix(featurizer: Featurizer, docs: Sequence[Doc]) -> Any:
    from scipy.sparse import csr_matrix  # type: ignore[import-untyped]

    indptr, indices, data = featurizer.transform_many(docs)
    return csr_matrix((data.astype(np.float64), indices, indptr), shape=(len(docs), featurizer.n_features))


def _fit_linear(x: Any, y: NDArray[np.intp], n_classes: int, config: TrainConfig) -> tuple[NDArray[Any], NDArray[Any]]:
    """Coefficients (classes × features) and intercepts; a label absent from y gets zero weights and a low bias."""
    _sklearn()
    from sklearn.exceptions import ConvergenceWarning  # type: ignore[import-untyped]
    from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]
    from sklearn.svm import LinearSVC  # type: ignore[import-untyped]

    coef = np.zeros((n_classes, x.shape[1]), dtype=np.float32)
    intercepts = np.full(n_classes, -10.0, dtype=np.float32)
    present = np.unique(y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # liblinear stops at max_iter; CV figures include such fits
        if config.method == "logreg" and len(present) > 1:
            lr = LogisticRegression(C=config.c, class_weight="balanced", max_iter=3000).fit(x, y)
            coef[lr.classes_] = lr.coef_
            intercepts[lr.classes_] = lr.intercept_
            return coef, intercepts
        binary = x.copy()
        binary.data[:] = 1.0
        total = np.asarray(binary.sum(axis=0)).ravel()
        for c in present:
            target = (y == c).astype(int)
            if target.all():
                intercepts[c] = 10.0
                continue
            if config.method == "nbsvm":
                inside = np.asarray(binary[target == 1].sum(axis=0)).ravel()
                p = config.nb_alpha + inside
                q = config.nb_alpha + total - inside
                r = np.log((p / p.sum()) / (q / q.sum()))
            else:
                r = np.ones(x.shape[1])
            svm = LinearSVC(C=config.c, class_weight="balanced", max_iter=5000, random_state=config.seed).fit(
                x.multiply(r).tocsr(), target
            )
            coef[c] = svm.coef_.ravel() * r
            intercepts[c] = svm.intercept_[0]
    return coef, intercepts


def _head_labels(
    targets: Sequence[str], level: Level, taxonomy: Taxonomy
) -> list[tuple[Level, list[str], NDArray[np.intp], NDArray[np.intp] | None]]:
    """For each head (domain, then the targets' own level if finer): labels, y, and parent index per label."""
    levels: list[Level] = ["domain"] if level == "domain" else ["domain", level]
    heads: list[tuple[Level, list[str], NDArray[np.intp], NDArray[np.intp] | None]] = []
    previous: list[str] = []
    for lv in levels:
        codes = [taxonomy.up(t, level=level, to=lv) for t in targets]
        if lv == "domain":
            labels, parents = sorted(set(codes)), None
        else:
            parent_of = {c: previous.index(taxonomy.up(c, level=lv, to="domain")) for c in set(codes)}
            labels = sorted(set(codes), key=lambda c: (parent_of[c], c))
            parents = np.array([parent_of[c] for c in labels], dtype=np.intp)
        index = {label: i for i, label in enumerate(labels)}
        heads.append((lv, labels, np.array([index[c] for c in codes], dtype=np.intp), parents))
        previous = labels
    return heads


def _fit_heads(
    docs: Sequence[Doc], heads: Sequence[tuple[Level, list[str], NDArray[np.intp], Any]], config: TrainConfig
) -> tuple[Featurizer, list[LinearWeights]]:
    featurizer = Featurizer.fit(docs, config.features)
    x = _matrix(featurizer, docs)
    fitted = []
    for level, labels, y, _ in heads:
        coef, intercepts = _fit_linear(x, y, len(labels), config)
        per_class = None if level == "domain" else config.fine_weights_per_label
        fitted.append(LinearWeights.from_dense(coef, intercepts, per_class=per_class))
    return featurizer, fitted


def _head_scores(featurizer: Featurizer, weights: LinearWeights, docs: Sequence[Doc]) -> NDArray[np.float64]:
    from scipy.sparse import csr_matrix

    x = _matrix(featurizer, docs)
    if weights.matrix is not None:
        dense: NDArray[np.float64] = np.asarray(x @ weights.matrix.astype(np.float64)) + weights.intercepts
        return dense
    w = csr_matrix(
        (np.asarray(weights.weights, dtype=np.float64), weights.classes, weights.indptr),
        shape=(featurizer.n_features, len(weights.intercepts)),
    )
    scores: NDArray[np.float64] = np.asarray((x @ w).todense()) + weights.intercepts
    return scores


def _folds(y: NDArray[np.intp], k: int, seed: int) -> list[tuple[NDArray[np.intp], NDArray[np.intp]]]:
    _sklearn()
    from sklearn.model_selection import StratifiedKFold  # type: ignore[import-untyped]

    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(len(y)), y))


def fit_temperature(scores: NDArray[np.float64], y: NDArray[np.intp], groups: NDArray[np.intp] | None = None) -> float:
    """The softmax temperature minimising the true labels' negative log-likelihood (golden-section search).

    With ``groups`` (a group per label) each row's softmax runs over the labels of its true label's group only:
    the conditional p(label | its parent) that a finer head gives.
    """
    if groups is not None:
        scores = np.where(groups[None, :] == groups[y][:, None], scores, -np.inf)
    rows = np.arange(len(y))

    def nll(log_t: float) -> float:
        z = scores / np.exp(log_t)
        z = z - z.max(axis=1, keepdims=True)
        return float(np.mean(np.log(np.exp(z).sum(axis=1)) - z[rows, y]))

    lo, hi = -6.0, 4.0
    ratio = (np.sqrt(5) - 1) / 2
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = nll(a), nll(b)
    for _ in range(60):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = nll(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = nll(b)
    return float(np.exp((lo + hi) / 2))


def fit_model(
    docs: Sequence[Doc],
    targets: Sequence[str],
    *,
    level: Level,
    taxonomy: Taxonomy,
    config: TrainConfig,
    meta: dict[str, Any] | None = None,
    progress: Progress = _quiet,
) -> Model:
    """Calibrate each head on out-of-fold scores, then fit every head on all rows."""
    heads = _head_labels(targets, level, taxonomy)
    finest_y = heads[-1][2]
    smallest = int(np.bincount(finest_y).min())
    k = min(config.calibration_folds, smallest)
    temperatures = [1.0] * len(heads)
    calibration: dict[str, Any] = {"folds": 0}
    if k >= 2 and len(heads[-1][1]) > 1:
        progress(f"calibrating: {k}-fold out-of-fold scores, heads {', '.join(h[0] for h in heads)}")
        oof = [np.zeros((len(docs), len(labels))) for _, labels, _, _ in heads]
        for train_idx, test_idx in _folds(finest_y, k, config.seed):
            part = [(lv, labels, y[train_idx], parents) for lv, labels, y, parents in heads]
            featurizer, fitted = _fit_heads([docs[i] for i in train_idx], part, config)
            for i, weights in enumerate(fitted):
                oof[i][test_idx] = _head_scores(featurizer, weights, [docs[j] for j in test_idx])
        for i, (lv, _, y, parents) in enumerate(heads):
            temperatures[i] = fit_temperature(oof[i], y, parents)
            progress(f"{lv} head: temperature {temperatures[i]:.4g}")
        calibration = {"folds": k, "out_of_fold": _oof_summary(oof, heads, temperatures)}
        progress(f"out-of-fold at {level} level: {calibration['out_of_fold']}")
    else:
        progress(f"too few rows per label ({smallest}) to calibrate; temperature 1")
    progress(f"fitting {config.method} on {len(docs)} rows")
    featurizer, fitted = _fit_heads(docs, heads, config)
    info = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "made_by": f"jiesu {_version()}",
        "method": {"learner": config.method, "c": config.c, "nb_alpha": config.nb_alpha},
        "calibration_fit": calibration,
        **(meta or {}),
    }
    model_heads = [
        Head(level=lv, labels=labels, weights=w, temperature=t, parents=parents)
        for (lv, labels, _, parents), w, t in zip(heads, fitted, temperatures, strict=True)
    ]
    return Model(featurizer=featurizer, heads=model_heads, taxonomy=taxonomy, meta=info)


def _oof_summary(
    oof: list[NDArray[np.float64]], heads: Sequence[tuple[Level, list[str], NDArray[np.intp], Any]], temps: list[float]
) -> dict[str, float]:
    """Accuracy, macro-F1 and ECE of the chained out-of-fold probabilities at the finest level."""
    probs: NDArray[np.float64] | None = None
    for scores, (_, _, _, parents), t in zip(oof, heads, temps, strict=True):
        z = scores / t
        if probs is None or parents is None:
            e = np.exp(z - z.max(axis=1, keepdims=True))
            probs = e / e.sum(axis=1, keepdims=True)
            continue
        same = (parents[:, None] == parents[None, :]).astype(np.float64)
        e = np.exp(z - z.max(axis=1, keepdims=True))
        with np.errstate(invalid="ignore", divide="ignore"):
            probs = np.nan_to_num(probs[:, parents] * e / (e @ same))
    assert probs is not None
    labels, y = heads[-1][1], heads[-1][2]
    report = score([labels[i] for i in y], [labels[i] for i in probs.argmax(axis=1)], probs.max(axis=1).tolist())
    return {"accuracy": round(report.accuracy, 4), "macro_f1": round(report.macro_f1, 4), "ece": round(report.ece, 4)}


def _labelled_docs(
    messages: Sequence[Message], guide: Guide, *, include_guide: bool, extra: Sequence[Message] = ()
) -> tuple[Level, Taxonomy, list[Doc], list[str]]:
    taxonomy = Taxonomy.from_guide(guide)
    level, mapping = taxonomy.detect(m.label for m in messages)
    docs = [(m.subject, m.detail) for m in messages]
    targets = [mapping[m.label.strip()] for m in messages]
    if include_guide:
        rows = rows_at_level(guide_rows(guide), taxonomy, level)
        docs += [(s, d) for s, d, _ in rows]
        targets += [code for _, _, code in rows]
    for s, d, code in extra_rows(extra, taxonomy, level):
        docs.append((s, d))
        targets.append(code)
    return level, taxonomy, docs, targets


def extra_rows(extra: Sequence[Message], taxonomy: Taxonomy, level: Level) -> list[tuple[str, str, str]]:
    """People's labelled decisions as rows at the model's level (a kind label counts for its category or domain)."""
    if not extra:
        return []
    found, mapping = taxonomy.detect(m.label for m in extra)
    if LEVELS.index(found) < LEVELS.index(level):
        raise LabelError(f"the extra labelled examples are {found} labels; a {level} model needs {level} or finer")
    return [(m.subject, m.detail, taxonomy.up(mapping[m.label.strip()], level=found, to=level)) for m in extra]


def train(
    messages: Sequence[Message],
    guide: Guide,
    *,
    include_guide: bool = False,
    extra: Sequence[Message] = (),
    config: TrainConfig = MESSAGES_CONFIG,
    source: str = "",
    progress: Progress = _quiet,
) -> Model:
    """Learn at the level of the messages' labels (domain, category or kind of the guide, by code or name).

    ``extra`` adds labelled examples (people's triage decisions) at that level or finer.
    """
    level, taxonomy, docs, targets = _labelled_docs(messages, guide, include_guide=include_guide, extra=extra)
    progress(f"labels are {level} codes or names of {taxonomy.source}: {len(set(targets))} distinct")
    meta = {
        "training_data": {
            "kind": "labelled messages" + (" + guide texts" if include_guide else ""),
            "source": source,
            "rows": len(messages),
            "extra_rows": len(extra),
            "guide": taxonomy.source,
        }
    }
    return fit_model(docs, targets, level=level, taxonomy=taxonomy, config=config, meta=meta, progress=progress)


def train_guide_only(
    guide: Guide,
    *,
    extra: Sequence[Message] = (),
    config: TrainConfig = GUIDE_CONFIG,
    source: str = "",
    progress: Progress = _quiet,
) -> Model:
    """Learn kinds from the guide's own texts (examples, keywords, names, descriptions) and ``extra`` kind rows."""
    taxonomy = Taxonomy.from_guide(guide)
    rows = guide_rows(guide) + extra_rows(extra, taxonomy, "kind")
    progress(f"guide {taxonomy.source}: {len(rows)} texts for {len(guide.kinds)} kinds")
    meta = {
        "training_data": {
            "kind": "guide texts (each kind's examples, keywords, name and description)"
            + (" + labelled examples" if extra else ""),
            "source": source,
            "rows": len(rows),
            "extra_rows": len(extra),
            "guide": taxonomy.source,
        }
    }
    return fit_model(
        [(s, d) for s, d, _ in rows],
        [code for _, _, code in rows],
        level="kind",
        taxonomy=taxonomy,
        config=config,
        meta=meta,
        progress=progress,
    )


def evaluate(model: Model, messages: Sequence[Message]) -> Report:
    """Scores at the level of the messages' labels (a finer model's probabilities are summed up to it)."""
    level, mapping = model.taxonomy.detect(m.label for m in messages)
    if LEVELS.index(level) > LEVELS.index(model.level):
        raise ValueError(f"the labels are {level}s but the model only knows {model.level}s")
    predictions = [model.predict(m.detail, subject=m.subject, level=level) for m in messages]
    return score(
        [mapping[m.label.strip()] for m in messages],
        [p.label for p in predictions],
        [p.confidence for p in predictions],
    )


def cross_validate(
    messages: Sequence[Message],
    guide: Guide,
    *,
    folds: int,
    include_guide: bool = False,
    config: TrainConfig = MESSAGES_CONFIG,
    progress: Progress = _quiet,
) -> Report:
    """Stratified k-fold: train on k−1 parts (calibration included), score the held-out part, pool the folds."""
    taxonomy = Taxonomy.from_guide(guide)
    _, mapping = taxonomy.detect(m.label for m in messages)
    codes = [mapping[m.label.strip()] for m in messages]
    labels = sorted(set(codes))
    y = np.array([labels.index(c) for c in codes], dtype=np.intp)
    if folds < 2 or int(np.bincount(y).min()) < folds:
        raise ValueError(f"{folds}-fold cross-validation needs at least {max(folds, 2)} rows of every label")
    truth: list[str] = []
    predicted: list[str] = []
    confidence: list[float] = []
    for n, (train_idx, test_idx) in enumerate(_folds(y, folds, config.seed), start=1):
        progress(f"fold {n}/{folds}: training on {len(train_idx)} rows")
        model = train([messages[i] for i in train_idx], guide, include_guide=include_guide, config=config)
        fold = [model.predict(messages[i].detail, subject=messages[i].subject) for i in test_idx]
        truth += [codes[i] for i in test_idx]
        predicted += [p.label for p in fold]
        confidence += [p.confidence for p in fold]
        part = score(truth[-len(fold) :], predicted[-len(fold) :], confidence[-len(fold) :])
        progress(f"fold {n}/{folds}: {part.summary()}")
    return score(truth, predicted, confidence)

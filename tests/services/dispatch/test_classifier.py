"""The message classifier: it learns, it round-trips through its files, it knows the guide's levels."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from services.dispatch.classifier import LabelError, Model, default_model_path
from services.dispatch.classifier.data import Message
from services.dispatch.classifier.features import FeatureConfig, Featurizer, normalize
from services.dispatch.classifier.labels import Taxonomy
from services.dispatch.classifier.metrics import expected_calibration_error, score
from services.dispatch.classifier.train import TrainConfig, evaluate, train, train_guide_only
from shared.guide import Guide, load_guide

# Words typical of each seed-guide kind, and filler that says nothing about the kind.
TOPICS = {
    "K0101": ["路灯", "不亮", "照明", "漆黑", "灯杆"],
    "K0401": ["停水", "自来水", "水压", "水管", "没水"],
    "K0701": ["工资", "拖欠", "老板", "欠薪", "克扣"],
    "K1101": ["学校", "老师", "补课", "学费", "学生"],
}
FILLER = ["您好", "请问", "我们", "小区", "已经", "好几天", "希望", "尽快", "处理", "反映", "谢谢", "领导"]


def synthetic(n_per_kind: int, seed: int) -> list[tuple[str, str]]:
    """(text, kind code) pairs: a few topic words mixed with filler."""
    rng = random.Random(seed)
    rows = []
    for kind, words in TOPICS.items():
        for _ in range(n_per_kind):
            tokens = rng.sample(words, 2) + rng.sample(FILLER, 5)
            rng.shuffle(tokens)
            rows.append(("，".join(tokens), kind))
    rng.shuffle(rows)
    return rows


def as_messages(rows: list[tuple[str, str]], guide: Guide, level: str, *, by_name: bool = False) -> list[Message]:
    taxonomy = Taxonomy.from_guide(guide)
    out = []
    for i, (text, kind) in enumerate(rows):
        code = taxonomy.up(kind, level="kind", to=level)  # type: ignore[arg-type]
        label = taxonomy.names[level][code] if by_name else code  # type: ignore[index]
        out.append(Message(id=str(i), subject="", detail=text, label=label))
    return out


FAST = TrainConfig(calibration_folds=3)


@pytest.fixture(scope="module")
def guide() -> Guide:
    return load_guide()


@pytest.fixture(scope="module")
def kind_model(guide: Guide) -> Model:
    return train(as_messages(synthetic(30, seed=1), guide, "kind"), guide, config=FAST)


def test_it_learns_well_above_chance(guide: Guide, kind_model: Model) -> None:
    held_out = as_messages(synthetic(15, seed=2), guide, "kind")
    report = evaluate(kind_model, held_out)
    assert report.accuracy >= 0.9  # chance is 0.25
    assert kind_model.level == "kind"
    assert sorted(kind_model.labels) == sorted(TOPICS)


def test_confidence_is_a_probability_and_ranked_covers_every_label(kind_model: Model) -> None:
    prediction = kind_model.predict("幸福路的路灯不亮了，晚上一片漆黑", top=None)
    assert prediction.label == "K0101"
    assert 0.5 < prediction.confidence <= 1.0
    assert prediction.ranked[0][0] == "K0101"
    assert sorted(label for label, _ in prediction.ranked) == sorted(TOPICS)
    assert sum(p for _, p in prediction.ranked) == pytest.approx(1.0)


def test_save_and_load_give_identical_predictions(tmp_path: Path, kind_model: Model) -> None:
    path = kind_model.save(tmp_path / "model.npz")
    assert path.exists() and path.with_suffix(".json").exists()
    loaded = Model.load(path)
    assert loaded.level == kind_model.level and loaded.labels == kind_model.labels
    for text, _ in synthetic(5, seed=3):
        assert np.array_equal(loaded.probabilities(text), kind_model.probabilities(text))
        assert loaded.predict(text) == kind_model.predict(text)


def test_the_model_file_holds_no_pickled_objects(tmp_path: Path, kind_model: Model) -> None:
    path = kind_model.save(tmp_path / "model.npz")
    with np.load(path, allow_pickle=False) as data:
        assert all(data[name].dtype != object for name in data.files)


@pytest.mark.parametrize(
    ("level", "by_name", "expected"),
    [
        ("domain", False, "domain"),
        ("domain", True, "domain"),
        ("category", False, "category"),
        ("category", True, "category"),
        ("kind", False, "kind"),
        ("kind", True, "kind"),
    ],
)
def test_the_level_is_detected_from_the_labels(guide: Guide, level: str, by_name: bool, expected: str) -> None:
    messages = as_messages(synthetic(3, seed=4), guide, level, by_name=by_name)
    detected, mapping = Taxonomy.from_guide(guide).detect(m.label for m in messages)
    assert detected == expected
    assert set(mapping) == {m.label for m in messages}


def test_a_domain_labelled_file_trains_a_domain_model(guide: Guide) -> None:
    messages = as_messages(synthetic(20, seed=5), guide, "domain", by_name=True)
    model = train(messages, guide, config=FAST)
    assert model.level == "domain"
    assert set(model.labels) == {"urban_rural_construction", "labour_social_security", "education_culture_sports"}
    assert model.predict("公司拖欠工资三个月了").label == "labour_social_security"
    assert model.lineage("labour_social_security").category is None


def test_unknown_labels_are_refused_with_what_is_wrong(guide: Guide) -> None:
    messages = [Message(id=str(i), subject="", detail="路灯不亮", label=lab) for i, lab in enumerate(["路灯", "K0101"])]
    with pytest.raises(LabelError, match="路灯"):
        train(messages, guide, config=FAST)


def test_kind_probabilities_roll_up_to_category_and_domain(kind_model: Model) -> None:
    probs = kind_model.probabilities("公司拖欠工资，老板跑了")
    domains, domain_probs = kind_model.rollup(probs, "domain")
    assert domain_probs.sum() == pytest.approx(1.0)
    expected = sum(p for label, p in zip(kind_model.labels, probs, strict=True) if label in {"K0101", "K0401"})
    assert domain_probs[domains.index("urban_rural_construction")] == pytest.approx(expected)
    prediction = kind_model.predict("公司拖欠工资，老板跑了", level="domain")
    assert prediction.label == "labour_social_security" and prediction.level == "domain"
    lineage = kind_model.lineage("K0701")
    assert (lineage.domain, lineage.category, lineage.kind) == ("labour_social_security", "C07", "K0701")


def test_a_kind_model_is_scored_at_the_files_domain_level(guide: Guide, kind_model: Model) -> None:
    held_out = as_messages(synthetic(10, seed=6), guide, "domain", by_name=True)
    report = evaluate(kind_model, held_out)
    assert {c.label for c in report.classes if c.support} == {
        "urban_rural_construction",
        "labour_social_security",
        "education_culture_sports",
    }
    assert report.accuracy >= 0.9


def test_guide_only_training_learns_kinds_from_the_guide(guide: Guide) -> None:
    model = train_guide_only(guide, config=TrainConfig(method="svm", c=1.0, features=FeatureConfig(min_df=1)))
    assert model.level == "kind" and len(model.labels) == len(guide.kinds)
    assert [h.level for h in model.heads] == ["domain", "kind"]
    assert model.predict("工地半夜施工，噪音吵得睡不着").label == "K0501"
    assert model.meta["training_data"]["guide"] == f"{guide.name} {guide.version}"


def test_the_shipped_model_loads_and_judges_at_kind_level() -> None:
    model = Model.load(default_model_path())
    assert model.level == "kind"
    assert "guide texts only" in model.meta["training_data"]["kind"]
    prediction = model.predict("小区门口的路灯坏了好几天，晚上一片漆黑")
    assert 0.0 < prediction.confidence <= 1.0 and len(prediction.ranked) == 10
    assert model.lineage(prediction.label).domain == "urban_rural_construction"


def test_features_ignore_width_case_and_digit_values() -> None:
    assert normalize("ＡＢＣ１２３  路灯\n坏了****") == "abc0 路灯 坏了*"
    featurizer = Featurizer.fit([("", "路灯坏了"), ("", "路灯不亮")], FeatureConfig(ngram_max=2, min_df=1))
    idx, values = featurizer.transform("", "路灯路灯 新字")
    assert len(idx) == len(set(idx.tolist())) and float(np.dot(values, values)) == pytest.approx(1.0)
    assert featurizer.transform("", "完全陌生")[0].size == 0


def test_scores_and_calibration_error() -> None:
    report = score(["a", "a", "b", "b"], ["a", "b", "b", "b"], [0.9, 0.6, 0.8, 0.7])
    assert (report.accuracy, report.n) == (0.75, 4)
    by_label = {c.label: c for c in report.classes}
    assert by_label["a"].recall == 0.5 and by_label["b"].precision == pytest.approx(2 / 3)
    assert report.macro_f1 == pytest.approx((2 / 3 + 0.8) / 2)
    assert expected_calibration_error([1.0, 1.0], [True, True]) == 0.0
    assert expected_calibration_error([0.9, 0.9], [False, False]) == pytest.approx(0.9)

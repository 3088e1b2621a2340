"""``jiesu model train|eval`` and ``jiesu judge`` end to end, through the command line's own entry point."""

from __future__ import annotations

import csv
import random
import re
from pathlib import Path

import pytest

from services.cli import main

TOPICS = {
    "城乡建设": ["路灯", "不亮", "停水", "水压", "井盖"],
    "劳动和社会保障": ["工资", "拖欠", "社保", "欠薪", "养老保险"],
    "教育文体": ["学校", "老师", "补课", "学费", "学生"],
}
FILLER = ["您好", "请问", "我们", "已经", "好几天", "希望", "尽快", "处理", "反映", "谢谢"]


def write_csv(path: Path, rows: list[dict[str, str]], columns: list[str]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def messages(n_per_label: int, seed: int) -> list[dict[str, str]]:
    rng = random.Random(seed)
    rows = []
    for label, words in TOPICS.items():
        for i in range(n_per_label):
            tokens = rng.sample(words, 2) + rng.sample(FILLER, 4)
            rng.shuffle(tokens)
            subject = tokens[0] + "的问题" if i % 3 == 0 else ""
            rows.append({"id": f"{seed}-{label}-{i}", "subject": subject, "detail": "，".join(tokens), "label": label})
    return rows


COLUMNS = ["id", "subject", "detail", "label"]
OUTPUT = ["domain", "category", "kind", "confidence", "decision"]
SEED_GUIDE = str(Path(__file__).parents[3] / "shared" / "data" / "seed_guide.json")


def test_train_then_eval_then_judge(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    train_csv = write_csv(tmp_path / "train.csv", messages(20, seed=1), COLUMNS)
    test_csv = write_csv(tmp_path / "test.csv", messages(8, seed=2), COLUMNS)
    model = tmp_path / "m" / "domain.npz"

    argv = ["model", "train", "--data", str(train_csv), "--out", str(model), "--include-guide", "--guide", SEED_GUIDE]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "read 60 rows" in err and "labels are domain" in err and "saved" in err
    assert model.exists() and model.with_suffix(".json").exists()

    assert main(["model", "eval", "--data", str(test_csv), "--model", str(model)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert re.fullmatch(r"accuracy=\d\.\d{4} macro_f1=\d\.\d{4} n=24", out[-1])
    assert float(out[-1].split()[0].split("=")[1]) >= 0.8
    assert sum(1 for line in out if line.startswith("accuracy=")) == 1
    assert any(line.startswith("labour_social_security") for line in out)

    assert main(["model", "eval", "--data", str(train_csv), "--folds", "3", "--guide", SEED_GUIDE]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert re.fullmatch(r"accuracy=\d\.\d{4} macro_f1=\d\.\d{4} n=60", out[-1])

    judged = tmp_path / "judged.csv"
    rows = [{k: v for k, v in r.items() if k != "label"} | {"note": "x"} for r in messages(3, seed=3)]
    source = write_csv(tmp_path / "in.csv", rows, ["id", "subject", "detail", "note"])
    assert main(["judge", "--input", str(source), "--output", str(judged), "--model", str(model)]) == 0
    with judged.open(encoding="utf-8") as handle:
        result = list(csv.DictReader(handle))
    assert list(result[0]) == ["id", "subject", "detail", "note", *OUTPUT]
    assert len(result) == len(rows)
    for row in result:
        assert row["domain"] in {"urban_rural_construction", "labour_social_security", "education_culture_sports"}
        assert row["category"] == "" and row["kind"] == ""
        assert row["decision"] == ("dispatch" if float(row["confidence"]) >= 0.35 else "triage")


def test_guide_only_training_gives_a_kind_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "guide.npz"
    assert main(["model", "train", "--guide-only", "--guide", SEED_GUIDE, "--out", str(model)]) == 0
    judged = tmp_path / "out.csv"
    source = write_csv(
        tmp_path / "in.csv",
        [{"id": "1", "subject": "", "detail": "公司拖欠我们三个月工资"}],
        ["id", "subject", "detail"],
    )
    assert main(["judge", "--input", str(source), "--output", str(judged), "--model", str(model)]) == 0
    with judged.open(encoding="utf-8") as handle:
        (row,) = list(csv.DictReader(handle))
    assert (row["domain"], row["category"], row["kind"]) == ("labour_social_security", "C07", "K0701")


def test_the_shipped_model_judges_by_default(tmp_path: Path) -> None:
    source = write_csv(
        tmp_path / "in.csv", [{"id": "1", "subject": "路灯", "detail": "路灯坏了好几天"}], ["id", "subject", "detail"]
    )
    assert main(["judge", "--input", str(source), "--output", str(tmp_path / "out.csv")]) == 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["model", "train", "--data", "{missing}", "--out", "{out}"], "cannot read"),
        (["model", "train", "--data", "{no_label}", "--out", "{out}"], "missing column(s) label"),
        (
            ["model", "train", "--data", "{bad}", "--out", "{out}", "--guide", SEED_GUIDE],
            "neither codes nor names",
        ),
        (["model", "eval", "--data", "{no_label}"], "missing column(s) label"),
        (["model", "eval", "--data", "{good}", "--model", "{missing}"], "cannot load model"),
        (["judge", "--input", "{no_detail}", "--output", "{out}"], "missing column(s) detail"),
        (["model", "train", "--out", "{out}"], "either --data CSV or --guide-only"),
    ],
)
def test_bad_input_exits_2_and_says_what_to_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    files = {
        "missing": str(tmp_path / "nowhere.csv"),
        "out": str(tmp_path / "out.npz"),
        "good": str(write_csv(tmp_path / "good.csv", messages(2, seed=4), COLUMNS)),
        "no_label": str(write_csv(tmp_path / "nolabel.csv", [{"id": "1", "subject": "", "detail": "x"}], COLUMNS[:3])),
        "no_detail": str(write_csv(tmp_path / "nodetail.csv", [{"id": "1", "subject": "x"}], ["id", "subject"])),
        "bad": str(
            write_csv(tmp_path / "bad.csv", [{"id": "1", "subject": "", "detail": "x", "label": "没有这个类"}], COLUMNS)
        ),
    }
    assert main([part.format(**files) for part in argv]) == 2
    assert message in capsys.readouterr().err

"""The guide learns: people's labelled triage decisions, from a file or dispatch's endpoint, change the model."""

from __future__ import annotations

import csv
import io
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from services.cli import main
from services.dispatch.classifier import LabelError
from services.dispatch.classifier.data import Message
from services.dispatch.classifier.train import TrainConfig, train
from shared.guide import SEED_GUIDE, Guide, load_guide
from tests.services.dispatch.test_classifier import FAST, TOPICS, as_messages, synthetic

PHRASE = "共享单车乱停放，把单元楼门口堵住了"
# People's decisions: bicycles blocking doorways were triaged to the education kind's unit in this city (the test needs
# a label the base data never ties to these words).
DECISIONS = [
    ("共享单车堵住楼门", "K1101"),
    ("楼下共享单车乱停放", "K1101"),
    ("单车停在单元门口进不去", "K1101"),
    ("共享单车把路堵了", "K1101"),
    ("门口乱停放的单车太多", "K1101"),
    ("单元楼门口共享单车成堆", "K1101"),
]
KEY = "test-key-5f0c"


def _csv(rows: list[tuple[str, str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["id", "subject", "detail", "label", "machine_label", "reason", "decided_by", "decided_at"])
    for n, (text, label) in enumerate(rows):
        writer.writerow(
            [f"case-{n}-{n}", "", text, label, "K0101", "triage", "operator-1", "2026-11-26T08:00:00+00:00"]
        )
    return out.getvalue()


@pytest.fixture(scope="module")
def guide() -> Guide:
    return load_guide()


def test_labelled_examples_for_a_kind_change_the_prediction_for_a_phrase_like_them(guide: Guide) -> None:
    base = as_messages(synthetic(20, seed=3), guide, "kind")
    before = train(base, guide, config=FAST).predict(PHRASE)
    extra = [Message(id=str(n), subject="", detail=text, label=label) for n, (text, label) in enumerate(DECISIONS)]
    after = train(base, guide, extra=extra, config=FAST)
    assert before.label != "K1101"
    assert after.predict(PHRASE).label == "K1101"
    assert after.meta["training_data"]["extra_rows"] == len(DECISIONS)


def test_kind_examples_join_a_category_model_at_their_category(guide: Guide) -> None:
    base = as_messages(synthetic(20, seed=3), guide, "category")
    extra = [Message(id=str(n), subject="", detail=text, label=label) for n, (text, label) in enumerate(DECISIONS)]
    model = train(base, guide, extra=extra, config=TrainConfig(calibration_folds=3))
    assert model.level == "category"
    assert model.predict(PHRASE).label == guide.kind_by_code["K1101"].category
    coarse = [Message(id="1", subject="", detail="单车", label=guide.kind_by_code["K1101"].category)]
    with pytest.raises(LabelError, match="needs kind or finer"):
        train(as_messages(synthetic(20, seed=3), guide, "kind"), guide, extra=coarse, config=FAST)


@pytest.fixture
def dispatch_like_server() -> Iterator[str]:
    """A real HTTP server answering like dispatch's GET /v1/labelled-examples, which wants a bearer credential."""
    body = _csv(DECISIONS).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.headers.get("Authorization") != f"Bearer {KEY}":
                self.send_response(401)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/csv; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1/labelled-examples"
    finally:
        server.shutdown()
        server.server_close()


def test_model_train_fetches_labelled_examples_with_credentials(
    tmp_path: Path, dispatch_like_server: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "train.csv"
    rows = [(text, kind) for text, kind in synthetic(20, seed=3) if kind in TOPICS]
    data.write_text(_csv(rows), encoding="utf-8")
    out = tmp_path / "m.npz"
    command = ["model", "train", "--data", str(data), "--guide", str(SEED_GUIDE), "--out", str(out)]
    command += ["--labelled-examples", dispatch_like_server]
    monkeypatch.delenv("JIESU_API_KEY", raising=False)
    assert main(command) == 2
    assert "refused the credentials (401)" in capsys.readouterr().err and not out.exists()
    monkeypatch.setenv("JIESU_API_KEY", KEY)
    extra_file = tmp_path / "more.csv"
    extra_file.write_text(_csv([("共享单车挡住消防通道", "K1101")]), encoding="utf-8")
    assert main([*command, "--labelled-examples", str(extra_file)]) == 0
    meta = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    assert meta["training_data"]["extra_rows"] == len(DECISIONS) + 1
    assert dispatch_like_server in meta["training_data"]["source"] and "more.csv" in meta["training_data"]["source"]

"""The first judge: emergencies transferred, trusted codes checked, doubtful text sent to a person."""

from __future__ import annotations

import pytest

from services.dispatch.judge import Judge
from shared.guide import load_guide


@pytest.fixture(scope="module")
def judge() -> Judge:
    return Judge(load_guide(), threshold=0.35)


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("幸福路的路灯坏了三天了，晚上很黑", "K0101"),
        ("工地夜里施工噪音太大，吵得睡不着", "K0501"),
        ("公司拖欠我两个月工资不给", "K0701"),
        ("请问社保断缴了怎么补缴", "K0801"),
        ("地铁口天天有小贩摆摊，人行道都走不了", "K0201"),
        ("小区早上开始停水了，也没通知", "K0401"),
    ],
)
def test_plain_reports_are_dispatched_to_their_kind(judge: Judge, text: str, kind: str) -> None:
    result = judge.judge(text=text, kind_code=None, source="hotline")
    assert result.decision == "dispatch"
    assert result.kind is not None and result.kind.code == kind
    assert result.confidence >= 0.35


def test_a_gas_leak_is_transferred_at_once(judge: Judge) -> None:
    result = judge.judge(text="楼道里煤气味很重，好像燃气泄漏了", kind_code=None, source="hotline")
    assert (result.decision, result.transfer_to) == ("transfer", "119")


def test_text_that_fits_no_kind_waits_for_a_person(judge: Judge) -> None:
    result = judge.judge(text="今天天气不错", kind_code=None, source="hotline")
    assert result.decision == "triage"
    assert "below threshold" in result.reasons[0]


def test_a_grid_workers_code_is_taken_when_the_text_agrees(judge: Judge) -> None:
    result = judge.judge(text="井盖丢了", kind_code="K0102", source="grid")
    assert (result.decision, result.method) == ("dispatch", "source-code")
    assert result.kind is not None and result.kind.code == "K0102"


def test_a_grid_workers_code_that_contradicts_the_text_goes_to_triage(judge: Judge) -> None:
    result = judge.judge(text="公司拖欠工资三个月不发，讨薪无门", kind_code="K0101", source="grid")
    assert result.decision == "triage"
    assert "K0101" in result.reasons[0]


def test_an_unknown_code_is_not_blindly_taken(judge: Judge) -> None:
    result = judge.judge(text="路灯不亮", kind_code="K9999", source="grid")
    assert result.decision == "triage"
    assert "unknown kind code" in result.reasons[0]


def test_a_matter_already_in_court_is_refused_with_the_reason_to_read_out(judge: Judge) -> None:
    result = judge.judge(text="我和开发商的房屋纠纷法院已立案，希望你们催一下", kind_code=None, source="hotline")
    assert (result.decision, result.kind) == ("refuse", None)
    assert "人民法院" in result.reasons[0]

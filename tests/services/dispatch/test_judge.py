"""The first judge: emergencies transferred, trusted codes checked, doubtful text sent to a person."""

from __future__ import annotations

import pytest

from services.dispatch.classifier import default_model_path
from services.dispatch.context import DispatchContext
from services.dispatch.judge import GuideClassifier, Judge, ModelClassifier
from services.dispatch.settings import DispatchSettings
from shared.guide import SEED_GUIDE, load_guide


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


@pytest.fixture(scope="module")
def city() -> DispatchContext:
    return DispatchContext.load(DispatchSettings())


def test_by_default_the_city_guide_is_judged_by_the_shipped_model(city: DispatchContext) -> None:
    assert (len(city.guide.categories), len(city.guide.kinds)) == (283, 545)
    assert isinstance(city.judge.classifier, ModelClassifier)
    lamp = city.judge.judge(text="小区门口的路灯坏了好几天了，晚上很黑", kind_code=None, source="hotline")
    assert lamp.decision == "dispatch" and lamp.kind is not None and "路灯" in lamp.kind.name
    assert 0.35 <= lamp.confidence <= 1


def test_the_model_recognises_an_emergency_the_keywords_missed(city: DispatchContext) -> None:
    gas = city.judge.judge(text="楼道里有很浓的煤气味，邻居家没人", kind_code=None, source="hotline")
    assert (gas.decision, gas.transfer_to) == ("transfer", "119")


def test_the_city_guide_refuses_what_no_unit_handles(city: DispatchContext) -> None:
    loan = city.judge.judge(text="朋友借钱不还，你们帮我要回来", kind_code=None, source="hotline")
    assert loan.decision == "refuse" and "民事纠纷" in loan.reasons[0]


def test_a_model_trained_on_another_guide_is_refused_with_what_to_do() -> None:
    with pytest.raises(ValueError, match="train it on this guide"):
        DispatchContext.load(DispatchSettings(guide_path=SEED_GUIDE, model_path=default_model_path()))


def test_without_a_fitting_model_the_guide_examples_judge() -> None:
    seed = DispatchContext.load(DispatchSettings(guide_path=SEED_GUIDE))
    assert isinstance(seed.judge.classifier, GuideClassifier)

"""JSON as the services write and read it: the standard library's compact text, exact integers, strict parsing."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import numpy as np
import pytest

from shared import jsontext


def standard(value: Any) -> bytes:
    """What the services wrote before: the standard library, compact, UTF-8, str() for the rest."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str).encode()


@dataclass
class Point:
    x: int


VALUES: list[Any] = [
    {"content": '井盖缺失 \u2028 "quoted" \\ tab\t', "subject": None, "urgent": True, "n": 3, "ratio": 0.1},
    {"requested_departments": [], "attachments": ["https://example.org/a.jpg"], "location": {"lat": 39.9}},
    {"when": datetime(2026, 11, 27, 8, 0, 0, 123456, tzinfo=UTC), "day": date(2026, 11, 27)},
    {"amount": Decimal("12.50"), "point": Point(1), "tags": {"a"}},
    {"big": 2**70, "negative": -(2**65), "zero": 0},
    {1: "one", 2.5: "two and a half"},  # keys that are not text become text
    [{"nested": [[], {}, [1, [2, [3]]]]}],
]


@pytest.mark.parametrize("value", VALUES, ids=range(len(VALUES)))
def test_the_text_is_the_standard_library_s(value: Any) -> None:
    assert jsontext.dumps(value) == standard(value)
    assert jsontext.dumps_text(value) == standard(value).decode()


def test_numpy_numbers_stay_numbers() -> None:
    # A score the classifier computed in numpy is a number in the event, as the standard library wrote it.
    assert jsontext.dumps({"confidence": np.float64(0.875)}) == b'{"confidence":0.875}'
    assert json.loads(jsontext.dumps({"rank": np.int64(3)})) == {"rank": 3}


@pytest.mark.parametrize("value", VALUES[:2] + VALUES[4:5] + VALUES[6:], ids=range(4))
def test_what_is_written_reads_back_the_same(value: Any) -> None:
    for form in (jsontext.dumps(value), jsontext.dumps_text(value), memoryview(jsontext.dumps(value))):
        assert jsontext.loads(form) == value


def test_integers_beyond_64_bits_come_back_exact() -> None:
    text = '{"id": 1180591620717411303424, "note": "电话 13800138000 转 12345678901234567890"}'
    assert jsontext.loads(text)["id"] == 2**70
    assert jsontext.loads(text.encode())["id"] == 2**70
    assert isinstance(jsontext.loads(b"[9223372036854775807]")[0], int)
    # Below -2**63 takes only 19 digits; orjson alone would read it as a float.
    assert jsontext.loads(b'{"n": -9223372036854775809}')["n"] == -(2**63) - 1
    assert jsontext.loads(memoryview(b"[-9999999999999999999]")) == [-9999999999999999999]


def test_text_with_a_long_integer_is_still_strict_json() -> None:
    for text in (b'{"n": 12345678901234567890, "lat": NaN}', '["\\ud800", 12345678901234567890]'):
        with pytest.raises(json.JSONDecodeError):
            jsontext.loads(text)


@pytest.mark.parametrize(
    "text",
    [b"NaN", b'{"lat": Infinity}', b'"\\ud800"', b"[1,]", b'{"a": 1', b""],
    ids=["nan", "infinity", "lone surrogate", "trailing comma", "cut short", "empty"],
)
def test_what_is_not_json_is_refused_as_a_json_error(text: bytes) -> None:
    with pytest.raises(json.JSONDecodeError):
        jsontext.loads(text)

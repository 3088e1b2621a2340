"""The CloudEvents envelope in Kafka binary mode."""

from __future__ import annotations

import pytest

from shared.events import CloudEvent, EnvelopeError


def test_binary_mode_round_trip_keeps_every_attribute() -> None:
    original = CloudEvent(
        type="jiesu.intake.report.received.v1",
        source="/jiesu/intake",
        subject="c-1",
        data={"内容": "路灯不亮"},
    )
    headers = dict(original.headers())
    assert headers["ce_specversion"] == b"1.0"
    assert headers["ce_type"] == b"jiesu.intake.report.received.v1"
    assert headers["content-type"] == b"application/json"
    assert headers["ce_time"].endswith(b"Z")
    back = CloudEvent.from_binary(original.headers(), original.body())
    assert back == original


@pytest.mark.parametrize(
    ("headers", "body", "message"),
    [
        (
            [
                ("ce_specversion", b"1.0"),
                ("ce_type", b"t"),
                ("ce_source", b"/s"),
                ("ce_time", b"2026-01-01T00:00:00Z"),
            ],
            b"{}",
            "ce_id",
        ),
        (
            [
                ("ce_specversion", b"0.3"),
                ("ce_id", b"1"),
                ("ce_type", b"t"),
                ("ce_source", b"/s"),
                ("ce_time", b"2026-01-01T00:00:00Z"),
            ],
            b"{}",
            "specversion",
        ),
        (
            [
                ("ce_specversion", b"1.0"),
                ("ce_id", b"1"),
                ("ce_type", b"t"),
                ("ce_source", b"/s"),
                ("ce_time", b"2026-01-01T00:00:00Z"),
            ],
            b"[1]",
            "JSON object",
        ),
        (
            [
                ("ce_specversion", b"1.0"),
                ("ce_id", b"1"),
                ("ce_type", b"t"),
                ("ce_source", b"/s"),
                ("ce_time", b"yesterday"),
            ],
            b"{}",
            "unreadable",
        ),
        (
            [
                ("ce_specversion", b"1.0"),
                ("ce_id", b"\xff\xfe1"),
                ("ce_type", b"t"),
                ("ce_source", b"/s"),
                ("ce_time", b"2026-01-01T00:00:00Z"),
            ],
            b"{}",
            "header ce_id is not UTF-8",
        ),
    ],
)
def test_a_broken_envelope_is_refused_with_the_reason(
    headers: list[tuple[str, bytes]], body: bytes, message: str
) -> None:
    with pytest.raises(EnvelopeError, match=message):
        CloudEvent.from_binary(headers, body)

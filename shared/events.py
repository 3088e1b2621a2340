"""CloudEvents 1.0 envelope and its Kafka binary-mode encoding."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shared import jsontext
from shared.ids import time_ordered_id

SPEC_VERSION = "1.0"
JSON_CONTENT_TYPE = "application/json"


class EnvelopeError(ValueError):
    """A message does not carry a valid CloudEvents envelope."""


def utcnow() -> datetime:
    """Return the current time, timezone-aware in UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class CloudEvent:
    """One event: CloudEvents 1.0 context attributes plus a JSON object as data."""

    type: str
    source: str
    data: dict[str, Any]
    subject: str | None = None
    id: str = field(default_factory=time_ordered_id)
    time: datetime = field(default_factory=utcnow)
    datacontenttype: str = JSON_CONTENT_TYPE
    specversion: str = SPEC_VERSION

    def body(self) -> bytes:
        """The data as compact UTF-8 JSON, the message value in binary mode."""
        return jsontext.dumps(self.data)

    def attributes(self) -> list[tuple[str, str]]:
        """The context attributes as binary-mode header names (``ce_<name>``) and their text values."""
        pairs = [
            ("ce_specversion", self.specversion),
            ("ce_id", self.id),
            ("ce_type", self.type),
            ("ce_source", self.source),
            ("ce_time", self.time.isoformat().replace("+00:00", "Z")),
            ("content-type", self.datacontenttype),
        ]
        if self.subject is not None:
            pairs.append(("ce_subject", self.subject))
        return pairs

    def headers(self) -> list[tuple[str, bytes]]:
        """Kafka binary-mode headers: every context attribute as ``ce_<name>``."""
        return [(name, value.encode()) for name, value in self.attributes()]

    @classmethod
    def from_binary(cls, headers: list[tuple[str, bytes]] | tuple[tuple[str, bytes], ...], body: bytes) -> CloudEvent:
        """Read an event back from binary-mode headers and value."""
        attrs: dict[str, str] = {}
        for name, value in headers:
            try:
                attrs[name] = value.decode()
            except UnicodeDecodeError:
                raise EnvelopeError(f"header {name} is not UTF-8 text") from None
        return cls.from_attributes(attrs, body)

    @classmethod
    def from_attributes(cls, attrs: Mapping[str, str], body: bytes) -> CloudEvent:
        """Read an event back from binary-mode attributes already decoded to text, and the value."""
        try:
            if attrs["ce_specversion"] != SPEC_VERSION:
                raise EnvelopeError(f"unsupported specversion {attrs['ce_specversion']!r}")
            data = jsontext.loads(body) if body else {}
            if not isinstance(data, dict):
                raise EnvelopeError("event data must be a JSON object")
            return cls(
                id=attrs["ce_id"],
                type=attrs["ce_type"],
                source=attrs["ce_source"],
                time=datetime.fromisoformat(attrs["ce_time"].replace("Z", "+00:00")),
                subject=attrs.get("ce_subject"),
                datacontenttype=attrs.get("content-type", JSON_CONTENT_TYPE),
                data=data,
            )
        except KeyError as missing:
            raise EnvelopeError(f"missing CloudEvents header {missing.args[0]}") from None
        except (ValueError, UnicodeDecodeError) as bad:
            if isinstance(bad, EnvelopeError):
                raise
            raise EnvelopeError(f"unreadable event: {bad}") from None

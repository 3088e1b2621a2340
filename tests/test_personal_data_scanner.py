"""Planted personal data and the scanner that looks for it, in any common spelling, in bytes from anywhere."""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from shared.pii import mask_id_number, mask_name, mask_phone

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"
# What people put between digit groups: spaces (also full-width), hyphens, dots, slashes, brackets.
_SEPARATOR = "[\\s\\-.()/\u3000\uff0d]{0,3}"


def valid_id_number(first17: str) -> str:
    """An ID number (身份证号) with its GB 11643 check character."""
    return first17 + _CHECK[sum(int(d) * w for d, w in zip(first17, _WEIGHTS, strict=True)) % 11]


def _digits_pattern(value: str) -> re.Pattern[bytes]:
    parts = [("[Xx]" if ch in "Xx" else re.escape(ch)) for ch in value]
    return re.compile(_SEPARATOR.join(parts).encode())


def _spellings(text: str) -> list[bytes]:
    """The text as UTF-8, as JSON \\u escapes (either case) and percent-encoded (either case)."""
    escaped = "".join(f"\\u{ord(ch):04x}" for ch in text)
    percent = quote(text, safe="")
    upper = escaped.upper().replace("\\U", "\\u")
    return [text.encode(), escaped.encode(), upper.encode(), percent.encode(), percent.lower().encode()]


@dataclass
class Planted:
    """A name, a phone number and ID numbers unique to one test run."""

    name: str
    phone: str
    id_number: str
    invalid_id_number: str
    seen: list[tuple[str, bytes]] = field(default_factory=list)

    @classmethod
    def fresh(cls) -> Planted:
        """New values: a four-character name, a 139 mobile number, a valid and a mistyped ID number."""
        rng = random.SystemRandom()
        name = "".join(rng.choice("甄贾薛史柯岑滕殷") for _ in range(1)) + "".join(
            rng.choice("测漏泄密守护隐私藏匿") for _ in range(3)
        )
        phone = "139" + "".join(rng.choice("0123456789") for _ in range(8))
        first17 = "110105" + f"19{rng.randint(50, 99)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
        first17 += "".join(rng.choice("0123456789") for _ in range(3))
        id_number = valid_id_number(first17)
        wrong = next(c for c in "0123456789X" if c != id_number[-1])
        return cls(name=name, phone=phone, id_number=id_number, invalid_id_number=first17 + wrong)

    def masked(self) -> dict[str, str | None]:
        """How intake masks them."""
        return {
            "name": mask_name(self.name),
            "phone": mask_phone(self.phone),
            "id_number": mask_id_number(self.id_number),
        }

    def found(self, data: bytes) -> list[str]:
        """Which planted values the bytes hold, in any spelling."""
        hits = []
        if any(spelling in data for spelling in _spellings(self.name)):
            hits.append("name")
        for label, value in (
            ("phone", self.phone),
            ("id_number", self.id_number),
            ("id_number", self.invalid_id_number),
        ):
            if label not in hits and _digits_pattern(value).search(data):
                hits.append(label)
        return hits

    def add(self, where: str, data: bytes | str) -> None:
        """Keep something to scan."""
        self.seen.append((where, data.encode() if isinstance(data, str) else data))

    def add_files(self, folder: Path) -> None:
        """Every file under a folder, raw (databases, their WAL and shared-memory files, logs)."""
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                self.add(f"file {path.relative_to(folder)}", path.read_bytes())

    def leaks(self) -> list[tuple[str, list[str]]]:
        """Where the planted values were seen."""
        return [(where, hits) for where, data in self.seen if (hits := self.found(data))]


def test_the_scanner_finds_each_value_in_every_common_spelling() -> None:
    p = Planted.fresh()
    a, b, c = p.phone[:3], p.phone[3:7], p.phone[7:]
    for spelling in (p.phone, f"{a} {b} {c}", f"{a}-{b}-{c}", f"+86 {a} {b} {c}", f"({a}) {b}.{c}", f"{a}\u3000{b}{c}"):
        assert p.found(f"来电 {spelling} 。".encode()) == ["phone"], spelling
    assert p.found(f"{a}{b} and {c}".encode()) == []
    assert p.found(p.id_number.lower().encode()) == ["id_number"]
    assert p.found(f"{p.id_number[:6]} {p.id_number[6:14]} {p.id_number[14:]}".encode()) == ["id_number"]
    assert p.found(p.invalid_id_number.encode()) == ["id_number"]
    assert p.found(json.dumps({"n": p.name}).encode()) == ["name"]
    assert p.found(json.dumps({"n": p.name}, ensure_ascii=False).encode()) == ["name"]
    assert p.found(quote(p.name).encode()) == ["name"]


def test_the_masked_forms_are_not_leaks() -> None:
    p = Planted.fresh()
    masked = p.masked()
    assert masked["phone"] == f"{p.phone[:3]}****{p.phone[-4:]}"
    assert masked["name"] == f"{p.name[0]}**{p.name[-1]}"
    assert masked["id_number"] == f"{p.id_number[:6]}********{p.id_number[-4:]}"
    assert p.found(json.dumps(masked, ensure_ascii=False).encode()) == []

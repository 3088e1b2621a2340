"""Text normalisation by the classifier's lookup tables agrees with the rules read character by character."""

from __future__ import annotations

import random

import pytest

from services.dispatch.classifier.features import normalize

SPACES = {0x20, 0x85, 0xA0, 0x1680, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000, 0xFEFF}


def by_the_rules(text: str) -> str:
    """Full-width to ASCII, lower case, digit runs → 0, mask runs → *, space runs → one space, trimmed once."""
    out: list[int] = []
    previous = 0
    for ch in text:
        code = ord(ch)
        if 0xFF01 <= code <= 0xFF5E:
            code -= 0xFEE0
        if 0x41 <= code <= 0x5A:
            code += 0x20
        run = 0
        if 0x30 <= code <= 0x39:
            code, run = 0x30, 1
        elif code == 0x2A:
            run = 2
        elif 0x09 <= code <= 0x0D or 0x2000 <= code <= 0x200A or code in SPACES:
            code, run = 0x20, 3
        repeated = run != 0 and run == previous
        previous = run
        if not repeated:
            out.append(code)
    if out and out[0] == 0x20:
        out = out[1:]
    if out and out[-1] == 0x20:
        out = out[:-1]
    return "".join(map(chr, out))


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "\u3000\u3000",
        "电话１３８００００００００　联系",
        "138****1234 ＡＢＣ abc",
        "路灯\t\n坏了  好几天",
        "emoji 😀😀 and 𠀀 beyond the plane",
        "＊＊＊ *** ** 0*0",
        "\ufeff开头和结尾\u2003",
    ],
)
def test_examples_normalise_as_the_rules_say(text: str) -> None:
    assert normalize(text) == by_the_rules(text)


def test_random_text_normalises_as_the_rules_say() -> None:
    rng = random.Random(11)
    alphabet = [
        *"abcXYZ*0123 路灯坏",
        *map(chr, [0x9, 0xA, 0x85, 0xA0, 0x2003, 0x202F, 0x3000, 0xFEFF, 0xFF0A, 0xFF10, 0xFF21, 0xFF5E, 0xFF5F]),
        *map(chr, [0xFFFF, 0x1F600, 0x20000]),
    ]
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 16)))
        assert normalize(text) == by_the_rules(text), repr(text)

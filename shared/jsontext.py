"""JSON as the services write and read it: compact UTF-8, made and parsed by orjson.

Event bodies, JSON columns and request bodies go through here. The text is what the standard library writes with
``ensure_ascii=False, separators=(",", ":"), default=str``: values JSON has no type for (times, dates, decimals)
become their ``str()``, numpy numbers stay numbers, and what orjson refuses to write (integers beyond 64 bits) is
written by the standard library instead. Parsing is strict JSON: ``NaN``, ``Infinity`` and lone surrogates are
refused with a :class:`json.JSONDecodeError` (orjson's error is one). orjson reads an integer beyond 64 bits as a
float; text with a run of 19 digits or more (where such an integer can be: below -2**63 takes 19) is read by the
standard library, so every integer comes back exact (one beyond a double's range, over 308 digits, is refused).
"""

from __future__ import annotations

import json
from typing import Any

import orjson

_OPTIONS = (
    orjson.OPT_NON_STR_KEYS
    | orjson.OPT_SERIALIZE_NUMPY
    | orjson.OPT_PASSTHROUGH_DATETIME  # as str(): "2026-11-27 08:00:00+00:00", as the standard library wrote them
    | orjson.OPT_PASSTHROUGH_DATACLASS
)
_FALLBACK = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str)
# Every digit becomes "0" and every other byte " ": a run of 19 digits is then a plain substring search. A regular
# expression tried at every digit of a payload cost four times orjson's parse of it.
_DIGITS_AS_ZEROS = bytes(0x30 if 0x30 <= byte <= 0x39 else 0x20 for byte in range(256))
_LONG_RUN = b"0" * 19


def dumps(value: Any) -> bytes:
    """``value`` as compact UTF-8 JSON."""
    try:
        return orjson.dumps(value, default=str, option=_OPTIONS)
    except orjson.JSONEncodeError:
        return _FALLBACK.encode(value).encode()


def dumps_text(value: Any) -> str:
    """``value`` as compact JSON text."""
    return dumps(value).decode()


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    """Parse JSON; a :class:`json.JSONDecodeError` when it is not."""
    if isinstance(data, memoryview):
        data = data.tobytes()
    # surrogatepass: a lone surrogate is orjson's to refuse, as a JSON error.
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    value = orjson.loads(data)  # strict, whatever follows
    if _LONG_RUN in raw.translate(_DIGITS_AS_ZEROS):
        return json.loads(data)  # the same valid text again, every integer exact
    return value

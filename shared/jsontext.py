"""JSON as the services write and read it: compact UTF-8, made and parsed by orjson.

Event bodies, JSON columns and request bodies go through here. The text is what the standard library writes with
``ensure_ascii=False, separators=(",", ":"), default=str``: values JSON has no type for (times, dates, decimals)
become their ``str()``, numpy numbers stay numbers, and what orjson refuses to write (integers beyond 64 bits) is
written by the standard library instead. Parsing is strict JSON: ``NaN``, ``Infinity`` and lone surrogates are
refused with a :class:`json.JSONDecodeError` (orjson's error is one). orjson reads an integer beyond 64 bits as a
float; text with a run of 20 digits or more (where such an integer can be) is read by the standard library, so
every integer comes back exact.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

_OPTIONS = (
    orjson.OPT_NON_STR_KEYS
    | orjson.OPT_SERIALIZE_NUMPY
    | orjson.OPT_PASSTHROUGH_DATETIME  # as str(): "2026-11-27 08:00:00+00:00", as the standard library wrote them
    | orjson.OPT_PASSTHROUGH_DATACLASS
)
_FALLBACK = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str)
_LONG_DIGITS = re.compile(rb"[0-9]{20}")
_LONG_DIGITS_TEXT = re.compile(r"[0-9]{20}")


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
    if isinstance(data, str):
        if _LONG_DIGITS_TEXT.search(data) is not None:
            return json.loads(data)
    elif _LONG_DIGITS.search(data) is not None:
        return json.loads(bytes(data))
    return orjson.loads(data)

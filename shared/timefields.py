"""Dates and times as the documents say they come: ISO 8601 text, never a number taken for a Unix time."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated

from pydantic import BeforeValidator

_NUMBER = re.compile(r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*")


def _iso_text(value: object) -> object:
    if isinstance(value, bool | int | float) or (isinstance(value, str) and _NUMBER.fullmatch(value)):
        raise ValueError("an ISO 8601 date or date-time is expected (e.g. 2026-11-26 or 2026-11-26T09:30:00+08:00)")
    return value


IsoDateTime = Annotated[datetime, BeforeValidator(_iso_text)]
"""A date-time given as ISO 8601 text."""

IsoDate = Annotated[date, BeforeValidator(_iso_text)]
"""A calendar date given as ISO 8601 text."""

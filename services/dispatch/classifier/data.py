"""Reading message CSV files (``id, subject, detail[, label]``) with errors that say what to fix."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

MESSAGE_COLUMNS = ("id", "subject", "detail")
LABELLED = (*MESSAGE_COLUMNS, "label")


class DataError(ValueError):
    """An input file that cannot be used as it is."""


@dataclass(frozen=True, slots=True)
class Message:
    """One citizen message; ``label`` is empty when the file has none."""

    id: str
    subject: str
    detail: str
    label: str = ""


def read_table(path: Path, *, required: tuple[str, ...]) -> tuple[list[str], list[dict[str, str]]]:
    """Column names and rows of a UTF-8 CSV file that has at least the required columns."""
    try:
        with Path(path).open(encoding="utf-8-sig", newline="") as handle:
            return parse_table(handle, name=str(path), required=required)
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path}: {exc}; give a readable UTF-8 CSV file") from exc


def parse_table(
    lines: Iterable[str], *, name: str, required: tuple[str, ...]
) -> tuple[list[str], list[dict[str, str]]]:
    """Column names and rows of CSV text that has at least the required columns; ``name`` says where it came from."""
    try:
        reader = csv.DictReader(lines)
        columns = [c.strip() for c in reader.fieldnames or []]
        reader.fieldnames = columns
        missing = [c for c in required if c not in columns]
        if missing:
            raise DataError(
                f"{name}: missing column(s) {', '.join(missing)}; the header needs {', '.join(required)}"
                f" (found: {', '.join(columns) or 'no header'})"
            )
        rows = [{k: (v or "") for k, v in row.items() if k is not None} for row in reader]
    except csv.Error as exc:
        raise DataError(f"cannot read {name}: {exc}; give a readable UTF-8 CSV file") from exc
    return columns, rows


def read_messages(path: Path, *, labelled: bool) -> list[Message]:
    """Messages of a CSV file; with ``labelled`` every row must have a label."""
    required = (*MESSAGE_COLUMNS, "label") if labelled else MESSAGE_COLUMNS
    _, rows = read_table(path, required=required)
    return messages_of(rows, name=str(path), labelled=labelled)


def parse_messages(text: str, *, name: str) -> list[Message]:
    """Labelled messages of CSV text (e.g. dispatch's ``GET /v1/labelled-examples``)."""
    _, rows = parse_table(io.StringIO(text.removeprefix("\ufeff"), newline=""), name=name, required=LABELLED)
    return messages_of(rows, name=name, labelled=True)


def messages_of(rows: list[dict[str, str]], *, name: str, labelled: bool) -> list[Message]:
    """Messages of parsed rows; with ``labelled`` every row must have a label."""
    if not rows:
        raise DataError(f"{name}: no rows")
    messages = [
        Message(id=r["id"], subject=r["subject"], detail=r["detail"], label=r.get("label", "").strip()) for r in rows
    ]
    if labelled:
        blank = [str(i) for i, m in enumerate(messages, start=2) if not m.label]
        if blank:
            raise DataError(
                f"{name}: empty label on line(s) {', '.join(blank[:10])}{' ...' if len(blank) > 10 else ''}"
            )
    return messages

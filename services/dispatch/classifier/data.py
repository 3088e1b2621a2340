"""Reading message CSV files (``id, subject, detail[, label]``) with errors that say what to fix."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

MESSAGE_COLUMNS = ("id", "subject", "detail")


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
            reader = csv.DictReader(handle)
            columns = [c.strip() for c in reader.fieldnames or []]
            reader.fieldnames = columns
            missing = [c for c in required if c not in columns]
            if missing:
                raise DataError(
                    f"{path}: missing column(s) {', '.join(missing)}; the header needs {', '.join(required)}"
                    f" (found: {', '.join(columns) or 'no header'})"
                )
            rows = [{k: (v or "") for k, v in row.items() if k is not None} for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"cannot read {path}: {exc}; give a readable UTF-8 CSV file") from exc
    return columns, rows


def read_messages(path: Path, *, labelled: bool) -> list[Message]:
    """Messages of a CSV file; with ``labelled`` every row must have a label."""
    required = (*MESSAGE_COLUMNS, "label") if labelled else MESSAGE_COLUMNS
    _, rows = read_table(path, required=required)
    if not rows:
        raise DataError(f"{path}: no rows")
    messages = [
        Message(id=r["id"], subject=r["subject"], detail=r["detail"], label=r.get("label", "").strip()) for r in rows
    ]
    if labelled:
        blank = [str(i) for i, m in enumerate(messages, start=2) if not m.label]
        if blank:
            raise DataError(
                f"{path}: empty label on line(s) {', '.join(blank[:10])}{' ...' if len(blank) > 10 else ''}"
            )
    return messages

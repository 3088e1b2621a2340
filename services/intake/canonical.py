"""The canonical text of a report that its fingerprint digests, written field by field.

It is exactly ``json.dumps(report.model_dump(mode="json"), sort_keys=True, ensure_ascii=False)`` (without a
reporter's ``id_number`` when it is None), the form stored fingerprints were made from, but written without the
intermediate dump and the sort, which cost most of a fingerprint.
"""

from __future__ import annotations

from json.encoder import encode_basestring

from services.intake.schemas import ReportCreate


def _text(value: str | None) -> str:
    return "null" if value is None else encode_basestring(value)


def _number(value: float) -> str:
    # json.dumps writes a float by repr (the schema's bounds keep NaN and infinities out).
    return float.__repr__(value) if isinstance(value, float) else int.__repr__(value)


def _texts(values: list[str]) -> str:
    return "[" + ", ".join(map(encode_basestring, values)) + "]"


def canonical_report(report: ReportCreate) -> str:
    """The report as sorted-key JSON with json.dumps' default separators, the text its fingerprint digests."""
    location = report.location
    reporter = report.reporter
    occurred_at = report.occurred_at
    if reporter is None:
        who = "null"
    else:
        # Reports from before the ID number existed keep the digest they were stored with: no key when None.
        id_number = "" if reporter.id_number is None else f'"id_number": {encode_basestring(reporter.id_number)}, '
        who = f'{{{id_number}"name": {_text(reporter.name)}, "phone": {_text(reporter.phone)}}}'
    when = (
        "null"
        if occurred_at is None
        else encode_basestring(report.model_dump(mode="json", include={"occurred_at"})["occurred_at"])
    )
    where = "null" if location is None else f'{{"lat": {_number(location.lat)}, "lon": {_number(location.lon)}}}'
    return (
        f'{{"address": {_text(report.address)}, '
        f'"attachments": {_texts([str(url) for url in report.attachments])}, '
        f'"content": {encode_basestring(report.content)}, '
        f'"external_id": {encode_basestring(report.external_id)}, '
        f'"grid_code": {_text(report.grid_code)}, '
        f'"kind_code": {_text(report.kind_code)}, '
        f'"location": {where}, '
        f'"occurred_at": {when}, '
        f'"reporter": {who}, '
        f'"requested_departments": {_texts(report.requested_departments)}, '
        f'"source": {encode_basestring(report.source)}, '
        f'"subject": {_text(report.subject)}, '
        f'"urgency": {_text(report.urgency)}}}'
    )

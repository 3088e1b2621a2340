"""Posting a request (POST requests): the form, the API key, and the ordinary hotline report it becomes."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Callable
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake import service
from services.intake.models import Report
from services.intake.open311.catalogue import REQUEST_TYPE
from services.intake.open311.documents import ServiceDefinition
from services.intake.open311.forms import BLANK, FORM_TYPE, RequestForm
from services.intake.open311.render import Open311Error
from services.intake.schemas import Location, ReportCreate, Reporter
from services.intake.service import Accepted
from shared.guide import Kind
from shared.pii import PersonalData

EXTERNAL_PREFIX = "open311:"
_ATTRIBUTE = re.compile(r"attribute\[([^\]]+)\]")
_CJK = re.compile(r"[\u3400-\u9fff]")
# Where each part of the report came from, to name the form field a refusal is about.
_FIELD_OF_REPORT = {
    "content": "description",
    "subject": "service_code",
    "kind_code": "service_code",
    "address": "address_string",
    "location": "lat",
    "attachments": "media_url",
    "external_id": "Idempotency-Key",
}


def read_form(body: bytes, content_type: str | None) -> tuple[dict[str, str], dict[str, str]]:
    """The fields and the ``attribute[code]`` values of a form-encoded body; each field once."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if body and media_type != FORM_TYPE:
        raise Open311Error(415, f"send the request as {FORM_TYPE}, not {media_type or 'an untyped body'}")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=100, errors="strict")
    except (UnicodeDecodeError, ValueError) as exc:
        raise Open311Error(400, f"the form cannot be read: {exc}") from exc
    fields: dict[str, str] = {}
    attributes: dict[str, str] = {}
    for name, value in pairs:
        match = _ATTRIBUTE.fullmatch(name)
        target, key = (attributes, match.group(1)) if match else (fields, name)
        if key in target:
            raise Open311Error(400, f"{name} was sent more than once")
        target[key] = value
    return fields, attributes


def parse_form(fields: dict[str, str]) -> RequestForm:
    """The form validated, or 400 naming every bad field."""
    try:
        return RequestForm.model_validate(fields)
    except ValidationError as exc:
        raise Open311Error(400, *describe(exc, lambda loc: str(loc[0]) if loc else "form")) from exc


def describe(exc: ValidationError, field_of: Callable[[tuple[int | str, ...]], str]) -> list[str]:
    """One line per validation error, naming the field."""
    return [f"{field_of(err['loc'])}: {err['msg']}" for err in exc.errors()]


def client_of(api_key: str | None, digests: list[str]) -> str:
    """The calling client's tag (the start of its key's digest), or 403 when the key is missing or unknown."""
    if not api_key:
        raise Open311Error(403, "api_key was not provided")
    digest = hashlib.sha256(api_key.encode()).hexdigest()
    # Compare with every configured digest in constant time, so the answer's timing tells nothing.
    matches = [hmac.compare_digest(digest, known) for known in digests]
    if not any(matches):
        raise Open311Error(403, "api_key is invalid")
    return digest[:12]


def chosen_request_type(definition: ServiceDefinition, sent: dict[str, str]) -> str | None:
    """Check the ``attribute[code]`` values the service defines (others are ignored); the request type chosen."""
    problems: list[str] = []
    names: dict[str, str] = {}
    for attribute in definition.attributes:
        value = sent.get(attribute.code)
        if value is None or not attribute.variable or not attribute.values:
            continue
        choices = {v.key: v.name for v in attribute.values}
        if value in choices:
            names[attribute.code] = choices[value]
        else:
            problems.append(f"attribute[{attribute.code}]: choose one of {', '.join(choices)}")
    if problems:
        raise Open311Error(400, *problems)
    return names.get(REQUEST_TYPE)


def check_location(form: RequestForm) -> None:
    """The spec asks for a place: lat and long together, or an address (address ids are not kept here)."""
    if (form.lat is None) != (form.long is None):
        raise Open311Error(400, "lat and long: send both or neither")
    if form.lat is None and not (form.address_string or "").strip(BLANK):
        unsupported = " (address_id is not supported: this jurisdiction has no address repository)"
        needed = "a location is required: lat and long, or address_string"
        raise Open311Error(400, needed + unsupported * (form.address_id is not None))


def reporter_name(first: str | None, last: str | None) -> str | None:
    """The reporter's name: family name first, without a space, for Chinese names."""
    first, last = (first or "").strip(), (last or "").strip()
    if first and last and (_CJK.search(first) or _CJK.search(last)):
        return last + first
    return " ".join(part for part in (first, last) if part) or None


def external_id(
    *, client: str, idempotency_key: str | None, form: RequestForm, attributes: dict[str, str], day: str, secret: str
) -> str:
    """The report's external id: the client's Idempotency-Key if sent, else a digest of what was sent that day.

    Either way a retry of the same request finds the first report; the digest covers the device and account
    ids, every field and attribute, and the centre's calendar day, so the same text sent again tomorrow is a
    new report (dispatch merges true duplicates). The digest is keyed (HMAC with the caller secret): the form
    holds the reporter's name and phone, which a plain digest would give away to anyone trying every number.
    """
    if idempotency_key is not None:
        return f"{EXTERNAL_PREFIX}{client}:key:{idempotency_key}"
    sent = {"form": form.model_dump(mode="json", exclude={"api_key"}), "attributes": attributes, "day": day}
    canonical = json.dumps(sent, sort_keys=True, ensure_ascii=False)
    digest = hmac.new(secret.encode(), canonical.encode(), hashlib.sha256).hexdigest()
    return f"{EXTERNAL_PREFIX}{client}:{digest[:40]}"


def to_report(form: RequestForm, kind: Kind, *, request_type: str | None, external: str) -> ReportCreate:
    """The hotline report (12345) a GeoReport request becomes."""
    name = reporter_name(form.first_name, form.last_name)
    try:
        return ReportCreate(
            source="hotline",
            external_id=external,
            content=(form.description or "").strip() or kind.name,
            subject=f"{kind.name}（{request_type}）" if request_type else kind.name,
            address=(form.address_string or "").strip(BLANK) or None,
            location=Location(lat=form.lat, lon=form.long) if form.lat is not None and form.long is not None else None,
            reporter=Reporter(name=name, phone=form.phone) if name or form.phone else None,
            kind_code=kind.code,
            attachments=[form.media_url] if form.media_url else [],
        )
    except ValidationError as exc:
        raise Open311Error(400, *describe(exc, _form_field)) from exc


def _form_field(loc: tuple[int | str, ...]) -> str:
    head = str(loc[0]) if loc else "form"
    if head == "reporter" and len(loc) > 1:
        return "phone" if loc[1] == "phone" else "first_name"
    return _FIELD_OF_REPORT.get(head, head)


async def store(
    session: AsyncSession, report: ReportCreate, *, number_prefix: str, tz: ZoneInfo, personal_data: PersonalData
) -> tuple[Report | Accepted, bool]:
    """The report stored (and announced) once, as ``POST /v1/reports`` does; True when it is new.

    A request repeated under the same key is the first one again; a different request under a used
    Idempotency-Key is a 409.
    """
    row = await service.find_by_external_id(session, source=report.source, external_id=report.external_id)
    if row is None:
        [accepted] = await service.accept_reports(
            session, [report], number_prefix=number_prefix, tz=tz, personal_data=personal_data
        )
        return accepted, True
    if row.fingerprint != service.fingerprint(report, secret=personal_data.caller_secret):
        raise Open311Error(
            409, f"this Idempotency-Key was already used for a different request ({row.case_number}); use a new key"
        )
    return row, False

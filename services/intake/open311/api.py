"""GeoReport v2 (Open311) routes on intake: discovery, services, requests and tokens, in JSON or XML."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Security
from fastapi.security import APIKeyQuery
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from services.intake.open311 import feed, submit
from services.intake.open311.api_auth import Poster, Reader
from services.intake.open311.context import Context, lifespan
from services.intake.open311.documents import (
    Discovery,
    Endpoint,
    ErrorItem,
    RequestCreated,
    Service,
    ServiceDefinition,
    ServiceRequest,
    TokenAnswer,
)
from services.intake.open311.forms import FORM_SCHEMA, FORM_TYPE
from services.intake.open311.render import JSON_TYPE, XML_TYPE, Open311Error, answer
from services.intake.open311.routing import Open311Route, link_methods
from shared.app import db_session, runtime_of
from shared.auth import record_access
from shared.events import utcnow

SPECIFICATION = "http://wiki.open311.org/GeoReport_v2"
router = APIRouter(prefix="/open311/v2", tags=["open311"], route_class=Open311Route, lifespan=lifespan)
Session = Annotated[AsyncSession, Depends(db_session)]
Format = Annotated[Literal["json", "xml"], Path(description="the answer format: json or xml")]
query_key = APIKeyQuery(
    name="api_key", scheme_name="api_key", auto_error=False, description="the client's key, when not in the form"
)
_DATE_TIME: dict[str, Any] = {"format": "date-time"}
_XML: dict[str, Any] = {"text/xml": {"schema": {"type": "string", "description": "the same document in XML"}}}
_REASONS = {
    400: "a parameter is missing or invalid",
    401: "api_key (or an Authorization bearer credential) missing or invalid",
    403: "the credential's role may not do this",
    404: "jurisdiction_id, format or the thing asked for not found",
    405: "method not allowed (Allow names those that are)",
    409: "the Idempotency-Key was used for a different request",
    415: "the body is not form-encoded",
    429: "the credential's rate limit is spent; Retry-After says when to try again",
}


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The answers of a route: the document in JSON or XML, and the errors list for each refusal."""
    refusals: dict[int | str, dict[str, Any]] = {
        status: {"model": list[ErrorItem], "description": _REASONS[status], "content": _XML}
        for status in (400, 401, 403, 404, 405, 429, *statuses)
    }
    # Any other 4xx is the errors list too; naming the range keeps FastAPI from promising a 422 never sent.
    refusals["4XX"] = {"model": list[ErrorItem], "description": "another refusal, as the errors list", "content": _XML}
    return {200: {"content": _XML}, **refusals}


@router.get("/discovery.{response_format}", response_model=Discovery, responses=documented())
async def discovery(response_format: Format, request: Request, ctx: Context, _caller: Reader) -> Response:
    """Where this GeoReport endpoint is, its formats, and whom to ask for an API key."""
    changed = ctx.catalogue.changed_at
    endpoint = Endpoint(
        specification=SPECIFICATION,
        url=f"{str(request.base_url).rstrip('/')}{router.prefix}",
        changeset=changed,
        type="production" if ctx.settings.environment == "production" else "test",
        formats=[XML_TYPE.split(";")[0], JSON_TYPE.split(";")[0]],
    )
    document = Discovery(
        changeset=changed,
        contact=ctx.settings.open311_contact,
        key_service=f"API keys are issued by the dispatch centre: {ctx.settings.open311_contact}",
        endpoints=[endpoint],
    )
    return answer(response_format, "discovery", document)


@router.get("/services.{response_format}", response_model=list[Service], responses=documented())
async def services(response_format: Format, ctx: Context, _caller: Reader) -> Response:
    """Every kind (种) of the dispatch guide as a service, grouped by category (类)."""
    return answer(response_format, "services", ctx.catalogue.services)


@router.get("/services/{service_code}.{response_format}", response_model=ServiceDefinition, responses=documented())
async def service_definition(service_code: str, response_format: Format, ctx: Context, _caller: Reader) -> Response:
    """The attributes a service asks for."""
    definition = ctx.catalogue.definitions.get(service_code)
    if definition is None:
        raise Open311Error(404, f"service_code {service_code} not found")
    return answer(response_format, "service_definition", definition)


@router.post(
    "/requests.{response_format}",
    response_model=list[RequestCreated],
    responses=documented(409, 415),
    openapi_extra={"requestBody": {"required": True, "content": {FORM_TYPE: {"schema": FORM_SCHEMA}}}},
)
async def post_request(
    response_format: Format,
    request: Request,
    session: Session,
    ctx: Context,
    caller: Poster,
    key_in_query: Annotated[str | None, Security(query_key)] = None,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            pattern=r"^[\x21-\x7e]{1,64}$",
            description="a client's own key for this request: a retry with it returns the first answer",
        ),
    ] = None,
) -> Response:
    """Post a request (form-encoded). It becomes an ordinary hotline report; a retry returns the first answer."""
    fields, attributes = submit.read_form(await request.body(), request.headers.get("content-type"))
    # The key (form, query or Authorization) was checked by the guard; its id tags the client.
    client = caller.credential_id
    form = submit.parse_form(fields)
    if form.jurisdiction_id is not None and form.jurisdiction_id != ctx.settings.open311_jurisdiction_id:
        raise Open311Error(404, f"jurisdiction_id {form.jurisdiction_id} not found")
    kind = ctx.catalogue.kind(form.service_code)
    if kind is None:
        raise Open311Error(404, f"service_code {form.service_code} not found")
    request_type = submit.chosen_request_type(ctx.catalogue.definitions[kind.code], attributes)
    submit.check_location(form)
    day = utcnow().astimezone(ctx.tz).strftime("%Y%m%d")
    prefix, personal = ctx.settings.case_number_prefix, ctx.settings.personal_data()
    external = submit.external_id(
        client=client,
        idempotency_key=idempotency_key,
        form=form,
        attributes=attributes,
        day=day,
        secret=personal.caller_secret,
    )
    report = submit.to_report(form, kind, request_type=request_type, external=external)
    try:
        async with session.begin():
            row, created = await submit.store(session, report, number_prefix=prefix, tz=ctx.tz, personal_data=personal)
    except IntegrityError:
        # The same request arrived twice at once and the other one was stored first: answer with it.
        async with session.begin():
            row, created = await submit.store(session, report, number_prefix=prefix, tz=ctx.tz, personal_data=personal)
    if created:
        runtime_of(request).outbox_written()
    assert row.case_number is not None
    created_answer = RequestCreated(
        service_request_id=row.id,
        token=row.case_number,
        service_notice=ctx.catalogue.service_notice(kind),
        account_id=form.account_id,
    )
    headers = {} if created else {"Idempotent-Replayed": "true"}
    return answer(response_format, "service_requests", [created_answer], headers=headers)


@router.get("/requests.{response_format}", response_model=list[ServiceRequest], responses=documented())
async def list_requests(
    response_format: Format,
    request: Request,
    session: Session,
    ctx: Context,
    caller: Reader,
    service_request_id: Annotated[
        str | None, Query(max_length=40_000, description="comma-delimited ids; overrides every other filter")
    ] = None,
    service_code: Annotated[str | None, Query(max_length=4000, description="comma-delimited service codes")] = None,
    start_date: Annotated[
        str | None,
        Query(pattern=feed.RFC3339.pattern, description="earliest requested_datetime", json_schema_extra=_DATE_TIME),
    ] = None,
    end_date: Annotated[
        str | None,
        Query(pattern=feed.RFC3339.pattern, description="latest requested_datetime", json_schema_extra=_DATE_TIME),
    ] = None,
    status: Annotated[
        str | None, Query(pattern=r"^(open|closed)(,(open|closed))*$", description="open, closed or both")
    ] = None,
    page: Annotated[int, Query(ge=1, le=1_000_000, description="extension: which page of page_size")] = 1,
    page_size: Annotated[int, Query(ge=1, le=feed.MAX_PAGE_SIZE, description="extension: at most 1000")] = 1000,
) -> Response:
    """Requests newest first: the last 90 days by default, a range of at most 90 days, at most 1000 a page."""
    start = feed.parse_moment("start_date", start_date) if start_date is not None else None
    end = feed.parse_moment("end_date", end_date) if end_date is not None else None
    filters = feed.Filters(
        ids=feed.split("service_request_id", service_request_id),
        service_codes=feed.split("service_code", service_code),
        statuses=feed.split("status", status),
        window=feed.window(start, end, now=utcnow()),
        page=page,
        page_size=page_size,
    )
    async with session.begin():
        rows = await feed.find(session, filters, publish_all=ctx.settings.open311_publish_all_reports)
    found = [feed.as_request(row, ctx.catalogue, tz=ctx.tz) for row in rows]
    await record_access(request, caller, action="open311:read-requests", detail={"count": len(found)})
    return answer(response_format, "service_requests", found)


@router.get(
    "/requests/{service_request_id}.{response_format}",
    response_model=list[ServiceRequest],
    responses=documented(),
)
async def read_request(
    service_request_id: str, response_format: Format, request: Request, session: Session, ctx: Context, caller: Reader
) -> Response:
    """One request (as a list of one, as the spec answers)."""
    async with session.begin():
        row = await feed.find_one(
            session, publish_all=ctx.settings.open311_publish_all_reports, report_id=service_request_id
        )
    await record_access(request, caller, action="open311:read-requests", detail={"report_id": row.id})
    return answer(response_format, "service_requests", [feed.as_request(row, ctx.catalogue, tz=ctx.tz)])


@router.get("/tokens/{token}.{response_format}", response_model=list[TokenAnswer], responses=documented())
async def read_token(token: str, response_format: Format, session: Session, ctx: Context, _caller: Reader) -> Response:
    """The request id behind a token (the case number a posted request was given)."""
    async with session.begin():
        row = await feed.find_one(session, publish_all=ctx.settings.open311_publish_all_reports, token=token)
    return answer(response_format, "service_requests", [TokenAnswer(service_request_id=row.id, token=token)])


link_methods(router)

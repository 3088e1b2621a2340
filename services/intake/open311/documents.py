"""The GeoReport v2 documents, as pydantic models: what the JSON answers hold and the XML answers spell out."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

ServiceType = Literal["realtime", "batch", "blackbox"]
Datatype = Literal["string", "number", "datetime", "text", "singlevaluelist", "multivaluelist"]


class Service(BaseModel):
    """One service: a kind (种) of the dispatch guide."""

    service_code: str = Field(description="the kind's code in the dispatch guide")
    service_name: str
    description: str
    metadata: bool = Field(description="true when the service has attributes (see its service definition)")
    type: ServiceType = Field(description="realtime: the request id is answered at once")
    keywords: str = Field(description="comma-separated")
    group: str = Field(description="the category (类) of the kind")


class AttributeValue(BaseModel):
    """One choice of a list attribute."""

    key: str
    name: str


class Attribute(BaseModel):
    """One extra field a service asks for (or, when ``variable`` is false, a notice to show)."""

    variable: bool
    code: str
    datatype: Datatype
    required: bool
    datatype_description: str | None = None
    order: int
    description: str
    values: list[AttributeValue] = []


class ServiceDefinition(BaseModel):
    """The attributes of one service."""

    service_code: str
    attributes: list[Attribute]


class ServiceRequest(BaseModel):
    """A request as the GeoReport feed shows it; absent values are left out."""

    service_request_id: str
    status: Literal["open", "closed"]
    status_notes: str | None = None
    service_name: str | None = None
    service_code: str
    description: str | None = None
    agency_responsible: str | None = None
    service_notice: str | None = None
    requested_datetime: datetime
    updated_datetime: datetime | None = None
    expected_datetime: datetime | None = Field(default=None, description="the completion deadline (办结时限)")
    address: str | None = None
    lat: float | None = None
    long: float | None = None
    media_url: str | None = None
    jiesu_status: str = Field(description="the detailed case status behind open/closed, e.g. signed, returned")


class RequestCreated(BaseModel):
    """The answer to a posted request: its id at once, and the case number as a token."""

    service_request_id: str
    token: str = Field(description="the case number (受理编号); GET tokens/{token} maps it to the request id")
    service_notice: str | None = None
    account_id: str | None = None


class TokenAnswer(BaseModel):
    """A token resolved to its request."""

    service_request_id: str
    token: str


class Endpoint(BaseModel):
    """One GeoReport endpoint of the discovery document."""

    specification: str
    url: str
    changeset: datetime
    type: Literal["production", "test"]
    formats: list[str]


class Discovery(BaseModel):
    """Where the GeoReport endpoint is and who runs it."""

    changeset: datetime
    contact: str
    key_service: str
    endpoints: list[Endpoint]


class ErrorItem(BaseModel):
    """One error of an ``errors`` answer."""

    code: int = Field(description="the HTTP status")
    description: str

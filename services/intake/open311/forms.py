"""The form of POST requests: its fields, and the schema our OpenAPI document gives for it."""

from __future__ import annotations

from typing import Any

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field

FORM_TYPE = "application/x-www-form-urlencoded"
# Whitespace as JSON Schema's (ECMA-262) \s has it, so the schema and the server agree on a blank address.
BLANK = (
    "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000\ufeff"
)
_BLANK_CLASS = "".join(f"\\u{ord(c):04x}" for c in BLANK)


class RequestForm(BaseModel):
    """The form fields of GeoReport's POST requests; ``attribute[code]`` fields are read beside it."""

    model_config = ConfigDict(extra="forbid")

    api_key: str | None = Field(default=None, max_length=200, description="the client's key (or in the query)")
    service_code: str = Field(min_length=1, max_length=32, description="a service_code from services")
    lat: float | None = Field(default=None, ge=-90, le=90, allow_inf_nan=False, description="WGS-84, with long")
    long: float | None = Field(default=None, ge=-180, le=180, allow_inf_nan=False, description="WGS-84, with lat")
    jurisdiction_id: str | None = Field(default=None, max_length=100, description="as in the query")
    address_string: str | None = Field(default=None, max_length=500, description="the address (blank: none)")
    address_id: str | None = Field(default=None, max_length=100, description="not kept: no address repository here")
    email: str | None = Field(default=None, max_length=254, pattern=f"^[^@{_BLANK_CLASS}]+@[^@{_BLANK_CLASS}]+$")
    device_id: str | None = Field(default=None, max_length=100)
    account_id: str | None = Field(default=None, max_length=100)
    first_name: str | None = Field(default=None, max_length=49)
    last_name: str | None = Field(default=None, max_length=49)
    phone: str | None = Field(default=None, pattern=r"^\+?[0-9][0-9\- ]{4,19}$")
    description: str | None = Field(default=None, max_length=4000)
    media_url: AnyHttpUrl | None = Field(
        default=None,
        description="a photo or other media (http or https)",
        # `format: uri` alone admits any scheme (`urn:x`); the document says which ones are taken.
        json_schema_extra={"pattern": "^[Hh][Tt][Tt][Pp][Ss]?://[^/?#\\s]+"},
    )


def _without_null(schema: Any) -> Any:
    """A form cannot send null: ``anyOf [X, null]`` becomes X, and titles go."""
    if isinstance(schema, dict):
        options = schema.get("anyOf")
        if isinstance(options, list) and {"type": "null"} in options and len(options) == 2:
            [kept] = [o for o in options if o != {"type": "null"}]
            schema = {**{k: v for k, v in schema.items() if k != "anyOf"}, **kept}
        return {k: _without_null(v) for k, v in schema.items() if k not in ("title", "default")}
    return schema


def form_schema() -> dict[str, Any]:
    """The form as JSON Schema, with the spec's rule that a request has a place: lat and long, or an address."""
    schema: dict[str, Any] = _without_null(RequestForm.model_json_schema())
    schema["description"] = (
        "GeoReport v2 POST requests, with attribute[code]=value fields for the service's attributes (see its "
        "service definition; codes the service does not define are ignored). Other fields are refused."
    )
    schema["additionalProperties"] = False
    schema["patternProperties"] = {r"^attribute\[[^\]]+\]$": {"type": "string", "maxLength": 200}}
    an_address = {"required": ["address_string"], "properties": {"address_string": {"pattern": f"[^{_BLANK_CLASS}]"}}}
    schema["anyOf"] = [{"required": ["lat", "long"]}, an_address]
    schema["dependentRequired"] = {"lat": ["long"], "long": ["lat"]}
    return schema


FORM_SCHEMA = form_schema()

"""The Open311 community's public Swagger description of GeoReport v2, run by schemathesis against our endpoint.

The public file has faults of its own; the test patches a copy where it contradicts the spec text
(open311.org GeoReport v2) and says why at each patch. What only this city can know (its service codes,
its jurisdiction_id, ids that exist) reaches schemathesis as value dictionaries, not as schema changes.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import schemathesis
from schemathesis.engine import events, from_schema
from schemathesis.python import asgi
from schemathesis.specs.openapi.schemas import OpenApiSchema

from services.intake.app import MIGRATIONS, create_app
from services.intake.settings import IntakeSettings
from shared.guide import SEED_GUIDE, load_guide
from shared.migrate import upgrade
from tests.helpers import provision_key, running
from tests.services.intake.test_open311 import BASE, KEY, auth_for, settings_for

SWAGGER = Path(__file__).resolve().parents[3].parent / "shared" / "reference" / "open311_georeport_v2_swagger.json"
EXAMPLES = 40


@dataclass
class Outcome:
    """What a schemathesis run saw: every failed check, engine errors, and the statuses per operation."""

    failures: list[tuple[str, str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)

    def failed(self, *, where: str = "") -> list[tuple[str, str, str]]:
        """Failures of operations whose label contains ``where``."""
        return [f for f in self.failures if where in f[0]]


def run(schema: OpenApiSchema) -> Outcome:
    """Run every phase schemathesis has against the in-process app; stop the app afterwards."""
    outcome = Outcome()
    try:
        for event in from_schema(schema).execute():
            if isinstance(event, events.ScenarioFinished):
                for interaction in event.recorder.interactions.values():
                    if interaction.response is not None:
                        outcome.statuses[(event.recorder.label, interaction.response.status_code)] += 1
                for nodes in event.recorder.checks.values():
                    for node in nodes:
                        if node.failure_info is not None:
                            failure = node.failure_info.failure
                            detail = f"{failure.title}: {failure.message}\n{node.failure_info.code_sample}"
                            outcome.failures.append((failure.operation or event.recorder.label, node.name, detail))
            elif isinstance(event, events.NonFatalError | events.FatalError):
                outcome.errors.append(repr(event))
    finally:
        asgi.shutdown_lifespans()
    return outcome


def seeded(settings: IntakeSettings) -> dict[str, str]:
    """Migrate the database and post one request, so that ids and tokens that exist can be drawn."""
    upgrade(script_location=MIGRATIONS, database_url=settings.database_url)

    async def post() -> dict[str, str]:
        await provision_key(auth_for(settings).database_url, key=KEY, role="hotline")
        async with running(create_app(settings, auth=auth_for(settings)), role=None) as client:
            form = {"api_key": KEY, "service_code": "K0101", "address_string": "东城街道幸福路12号"}
            created: dict[str, str] = (await client.post(f"{BASE}/requests.json", data=form)).json()[0]
            return created

    return asyncio.run(post())


def city_values(created: dict[str, str], **parameters: str) -> dict[str, Any]:
    """Value dictionaries for the parameters only this city can fill: they are drawn often, not always."""
    codes = [kind.code for kind in load_guide(SEED_GUIDE).kinds]
    dictionaries = {
        "codes": {"values": codes},
        "jurisdictions": {"values": ["jiesu"]},
        "ids": {"values": [created["service_request_id"]]},
        "tokens": {"values": [created["token"]]},
    }
    return {
        "dictionaries": dictionaries,
        "parameters": {name: {"dictionary": d, "probability": 0.7} for name, d in parameters.items()},
    }


def patched(public: dict[str, Any]) -> dict[str, Any]:
    """A copy of the public file with its faults fixed after the spec text."""
    doc = copy.deepcopy(public)
    paths = doc["paths"]
    # 1. The file names the single-request path `/request/{id}`; the spec's is `/requests/{id}`, and it answers
    #    a list of one request (`<service_requests><request>`), not a bare request.
    single = paths.pop("/request/{service_request_id}.{response_format}")
    single["get"]["responses"]["200"]["schema"] = {"type": "array", "items": {"$ref": "#/definitions/Request"}}
    paths["/requests/{service_request_id}.{response_format}"] = single
    # 2. `response_format` is a free string in the file; the spec knows two formats, by extension.
    doc["parameters"]["response_format"] = {
        "name": "response_format",
        "in": "path",
        "required": True,
        "type": "string",
        "enum": ["json", "xml"],
    }
    # 3. The file makes `jurisdiction_id` required; the spec needs it only where an endpoint serves several.
    doc["parameters"]["jurisdiction_id"]["required"] = False
    # 4. The file puts POST's fields in the query, though its own `consumes` says form-encoded and the spec posts
    #    them as a form body. WGS-84 bounds added to lat/long. `attribute` goes: the spec's `attribute[code]=value`
    #    keys cannot be written in Swagger 2.0 (test_open311.py posts attributes by hand).
    post = paths["/requests.{response_format}"]["post"]
    form: list[dict[str, Any]] = []
    for parameter in post["parameters"]:
        if "$ref" in parameter or parameter["name"] == "attribute":
            form += [parameter] if "$ref" in parameter else []
            continue
        moved = parameter | {"in": "formData"}
        if moved["name"] == "lat":
            moved |= {"minimum": -90, "maximum": 90}
        if moved["name"] == "long":
            moved |= {"minimum": -180, "maximum": 180}
        form.append(moved)
    post["parameters"] = form
    # 5. The file documents no error answers except a 401 for an unknown jurisdiction; the spec answers every
    #    refusal with an `errors` list: 400 (missing or bad parameter), 403 (api_key, on POST) and 404 (unknown
    #    jurisdiction_id, service_code, request or token).
    doc["definitions"]["Error"] = {
        "required": ["code", "description"],
        "properties": {"code": {"type": "integer"}, "description": {"type": "string"}},
    }
    errors = {"description": "errors", "schema": {"type": "array", "items": {"$ref": "#/definitions/Error"}}}
    for item in paths.values():
        for method, operation in item.items():
            operation["responses"].pop("401", None)
            operation["responses"] |= {"400": errors, "404": errors} | ({"403": errors} if method == "post" else {})
    # 6. The file answers a token with one object; the spec answers a list (`<service_requests><request>`).
    token = paths["/tokens/{token_id}.{response_format}"]["get"]["responses"]["200"]
    token["schema"] = {"type": "array", "items": {"$ref": "#/definitions/TokenResponse"}}
    # 7. The file has no discovery document; the spec's is added.
    endpoint = {
        "required": ["specification", "url", "changeset", "type", "formats"],
        "properties": {
            "specification": {"type": "string"},
            "url": {"type": "string", "format": "uri"},
            "changeset": {"type": "string", "format": "date-time"},
            "type": {"type": "string", "enum": ["production", "test"]},
            "formats": {"type": "array", "items": {"type": "string"}},
        },
    }
    discovery = {
        "type": "object",
        "required": ["changeset", "contact", "key_service", "endpoints"],
        "properties": {
            "changeset": {"type": "string", "format": "date-time"},
            "contact": {"type": "string"},
            "key_service": {"type": "string"},
            "endpoints": {"type": "array", "items": endpoint},
        },
    }
    paths["/discovery.{response_format}"] = {
        "get": {
            "parameters": [{"$ref": "#/parameters/response_format"}],
            "responses": {"200": {"description": "discovery", "schema": discovery}, "404": errors},
        }
    }
    return doc


def test_the_public_swagger_description_passes_against_our_endpoint(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    created = seeded(settings)
    values = city_values(
        created,
        **{
            "query.jurisdiction_id": "jurisdictions",
            "body.service_code": "codes",
            "path.service_code": "codes",
            "path.service_request_id": "ids",
            "path.token_id": "tokens",
        },
    )
    config = schemathesis.Config.from_dict(
        {
            "base-url": f"http://{asgi.HOST}{BASE}",
            "seed": 311,
            "generation": {"max-examples": EXAMPLES, "database": "none"},
            "checks": {"enabled": True},
            "auth": {"openapi": {"api_key": {"api_key": KEY}}},
            # Every route needs a credential; the public file declares none for its GET operations.
            "headers": {"Authorization": f"Bearer {KEY}"},
            # The spec's rule that a request has a place (lat and long, or address_string, or address_id) cannot
            # be written in Swagger 2.0's formData, so a schema-valid POST may rightly be refused 400.
            "operations": [
                {
                    "include-path": "/requests.{response_format}",
                    "include-method": "POST",
                    "checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", "400", "401", "403", "404"]}},
                }
            ],
            **values,
        }
    )
    schema = schemathesis.openapi.from_dict(patched(json.loads(SWAGGER.read_text(encoding="utf-8"))), config=config)
    schema.app = create_app(settings, auth=auth_for(settings))
    outcome = run(schema)
    assert outcome.errors == []
    assert outcome.failures == [], "\n\n".join(f"{op} {check}\n{detail}" for op, check, detail in outcome.failures)
    for operation in (
        "GET /services.{response_format}",
        "GET /services/{service_code}.{response_format}",
        "POST /requests.{response_format}",
        "GET /requests.{response_format}",
        "GET /requests/{service_request_id}.{response_format}",
        "GET /tokens/{token_id}.{response_format}",
        "GET /discovery.{response_format}",
    ):
        assert outcome.statuses[(operation, 200)] > 0, f"{operation} was never answered 200"

"""Intake's own OpenAPI document, run by schemathesis with every check: no server errors anywhere, and the
GeoReport operations pass every check."""

from __future__ import annotations

from pathlib import Path

import schemathesis

from services.intake.app import create_app
from tests.services.intake.test_open311 import KEY, auth_for, settings_for
from tests.services.intake.test_open311_swagger import EXAMPLES, city_values, run, seeded


def test_our_openapi_document_passes_with_every_check_and_no_server_error(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    created = seeded(settings)
    values = city_values(
        created,
        **{
            "query.jurisdiction_id": "jurisdictions",
            "body.service_code": "codes",
            "path.service_code": "codes",
            "path.service_request_id": "ids",
            "path.token": "tokens",
            "path.report_id": "ids",
        },
    )
    config = schemathesis.Config.from_dict(
        {
            "seed": 311,
            "generation": {"max-examples": EXAMPLES, "database": "none"},
            "checks": {"enabled": True},
            "auth": {"openapi": {"api_key": {"api_key": KEY}, "bearer": {"bearer": KEY}}},
            **values,
        }
    )
    app = create_app(settings, auth=auth_for(settings))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=config)
    outcome = run(schema)
    assert outcome.errors == []
    server_errors = [f for f in outcome.failures if f[1] == "not_a_server_error"]
    assert server_errors == [], "\n\n".join(f"{op}\n{detail}" for op, _, detail in server_errors)
    ours = outcome.failed(where="/open311/")
    assert ours == [], "\n\n".join(f"{op} {check}\n{detail}" for op, check, detail in ours)
    answered = {operation for (operation, status) in outcome.statuses if status == 200 and "/open311/" in operation}
    assert len(answered) == 7, f"Open311 operations answered 200: {sorted(answered)}"

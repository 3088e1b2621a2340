"""The ceiling: a bare FastAPI endpoint doing what intake does minus storage (parse, validate, answer 201)."""

from __future__ import annotations

import uuid

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field

app = FastAPI(title="bare ceiling")


class Report(BaseModel):
    model_config = ConfigDict(extra="allow")

    source: str
    external_id: str = Field(min_length=1)
    content: str = Field(min_length=1, max_length=4000)


@app.post("/v1/reports", status_code=201)
async def accept(report: Report) -> dict[str, str]:
    return {"id": str(uuid.uuid4()), "case_number": "JS0", "status": "received"}


@app.get("/readyz")
async def ready() -> dict[str, str]:
    return {"status": "ready"}

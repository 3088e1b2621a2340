"""Generate the AsyncAPI 3.0 document of every topic, key and payload from the contract in code."""

from __future__ import annotations

import json
import re
from typing import Any

from shared.contracts import CHANNELS

HEADERS = {
    "type": "object",
    "required": ["ce_specversion", "ce_id", "ce_type", "ce_source", "ce_time", "content-type"],
    "properties": {
        "ce_specversion": {"type": "string", "const": "1.0"},
        "ce_id": {"type": "string", "description": "unique per event; consumers drop duplicates by it"},
        "ce_type": {"type": "string", "description": "versioned event type, e.g. jiesu.dispatch.case.signed.v1"},
        "ce_source": {"type": "string", "description": "the producing service, e.g. /jiesu/dispatch"},
        "ce_time": {"type": "string", "format": "date-time"},
        "ce_subject": {"type": "string", "description": "the case id"},
        "content-type": {"type": "string", "const": "application/json"},
    },
}


def _name(event_type: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[._]", event_type.removeprefix("jiesu.")))


def document() -> dict[str, Any]:
    """The AsyncAPI document, deterministic so the committed copy can be checked against it."""
    schemas: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for channel in CHANNELS:
        channel_id = re.sub(r"[^A-Za-z0-9]", "", channel.title.title())
        refs = {}
        for event_type, model in channel.messages.items():
            schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            for name, definition in schema.pop("$defs", {}).items():
                schemas[name] = definition
            schemas[model.__name__] = schema
            message_id = _name(event_type)
            messages[message_id] = {
                "name": event_type,
                "title": event_type,
                "summary": (model.__doc__ or "").strip().splitlines()[0] if model.__doc__ else event_type,
                "contentType": "application/json",
                "headers": {"$ref": "#/components/schemas/CloudEventHeaders"},
                "payload": {"$ref": f"#/components/schemas/{model.__name__}"},
                "bindings": {"kafka": {"key": {"type": "string", "description": "the case id"}}},
            }
            refs[message_id] = {"$ref": f"#/components/messages/{message_id}"}
        body: dict[str, Any] = {
            "address": channel.address,
            "title": channel.title,
            "description": f"{channel.description} Written by {channel.publisher}.",
            "messages": refs,
        }
        if channel.parameters:
            body["parameters"] = {name: {"description": text} for name, text in channel.parameters.items()}
        channels[channel_id] = body
        operations[f"publish{channel_id}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "summary": f"{channel.publisher} publishes {channel.title.lower()}",
            "messages": [{"$ref": f"#/channels/{channel_id}/messages/{m}"} for m in refs],
        }
    schemas["CloudEventHeaders"] = HEADERS
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "jiesu events",
            "version": "1.0.0",
            "description": (
                "Events of the jiesu call-and-respond dispatch services. Every message is a CloudEvents 1.0 "
                "binary-mode Kafka message: context attributes in ce_* headers, the JSON payload as the value, "
                "the case id as the key. Delivery is at least once; consumers drop duplicates by ce_id. Topics may "
                "carry a deployment prefix (TOPIC_NAMESPACE)."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "production": {"host": "kafka:9092", "protocol": "kafka", "description": "the cluster's bootstrap servers"}
        },
        "channels": channels,
        "operations": operations,
        "components": {"schemas": dict(sorted(schemas.items())), "messages": dict(sorted(messages.items()))},
    }


def render() -> str:
    """The document as stable, human-readable JSON."""
    return json.dumps(document(), ensure_ascii=False, indent=2, sort_keys=False) + "\n"

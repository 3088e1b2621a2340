"""Answers in the format the path asks for (``.json`` or ``.xml``), and the ``errors`` answer of the spec."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal
from xml.etree import ElementTree

from pydantic import BaseModel
from starlette.responses import Response

from services.intake.open311.documents import ErrorItem

Format = Literal["json", "xml"]
JSON_TYPE = "application/json; charset=utf-8"
XML_TYPE = "text/xml; charset=utf-8"
# The element names of the spec's XML: a list's items are named after the list.
ITEM_TAGS = {
    "services": "service",
    "service_requests": "request",
    "errors": "error",
    "attributes": "attribute",
    "values": "value",
    "endpoints": "endpoint",
    "formats": "format",
}

# Characters XML 1.0 cannot carry at all, even escaped (most C0 controls, lone surrogates, U+FFFE/U+FFFF).
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class Open311Error(Exception):
    """A refusal answered as the spec's ``errors`` list with one HTTP status."""

    def __init__(self, status: int, *descriptions: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__("; ".join(descriptions))
        self.status = status
        self.descriptions = descriptions or ("error",)
        self.headers = dict(headers or {})


def format_of(value: object) -> Format:
    """The answer format named by the path (JSON when the path names none we know)."""
    return "xml" if value == "xml" else "json"


def _plain(document: BaseModel | Sequence[BaseModel]) -> Any:
    if isinstance(document, BaseModel):
        return document.model_dump(mode="json", exclude_none=True)
    return [item.model_dump(mode="json", exclude_none=True) for item in document]


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return _NOT_XML.sub("\ufffd", str(value))


def _fill(element: ElementTree.Element, value: Any) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            child = ElementTree.SubElement(element, key)
            _fill(child, item)
    elif isinstance(value, list):
        item_tag = ITEM_TAGS[element.tag]
        for item in value:
            _fill(ElementTree.SubElement(element, item_tag), item)
    else:
        element.text = _text(value)


def to_xml(root: str, document: Any) -> bytes:
    """A plain document (dicts, lists, scalars) as XML under ``root``, in UTF-8 with a declaration."""
    element = ElementTree.Element(root)
    _fill(element, document)
    data: bytes = ElementTree.tostring(element, encoding="utf-8", xml_declaration=True)
    return data


def answer(
    fmt: Format,
    root: str,
    document: BaseModel | Sequence[BaseModel],
    *,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """A document as JSON, or as XML under the spec's root element."""
    plain = _plain(document)
    if fmt == "xml":
        return Response(to_xml(root, plain), status_code=status, media_type=XML_TYPE, headers=headers)
    body = json.dumps(plain, ensure_ascii=False, separators=(",", ":")).encode()
    return Response(body, status_code=status, media_type=JSON_TYPE, headers=headers)


def errors(fmt: Format, error: Open311Error) -> Response:
    """The spec's error answer: a list of ``{code, description}``, ``<errors><error>`` in XML."""
    items = [ErrorItem(code=error.status, description=text) for text in error.descriptions]
    return answer(fmt, "errors", items, status=error.status, headers=error.headers)

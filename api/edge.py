"""What the API accepts before any handler runs: JSON nested at most MAX_JSON_DEPTH deep, and no control characters
(NUL above all: PostgreSQL refuses it in text) or lone surrogates in any string that can reach the database: path
parameters, query arguments, form fields and file names, JSON keys and values. Refused here with 400/422 instead of a
RecursionError or a DataError (500) deep inside.

Forms and query strings are checked as werkzeug builds them (``CheckedMultiDict``), so the checks cost nothing extra
and still run after a handler raises the body limit (zip uploads)."""
from __future__ import annotations

import json
import re
from typing import Any, Iterable

from flask import Flask, Request, request
from werkzeug.datastructures import FileStorage, ImmutableMultiDict

from face3d.shared.errors import ErrorCode, Face3dError

MAX_JSON_DEPTH = 32
# C0 controls, DEL, C1 controls, and UTF-16 surrogates (they cannot be encoded to UTF-8 for the database).
_REFUSED = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def refuse_control_characters(value: str, where: str) -> None:
    """422 when ``value`` holds a control character or a lone surrogate (``where`` names it in the message)."""
    found = _REFUSED.search(value)
    if found:
        raise Face3dError(f"{where} contains the control character U+{ord(found.group()):04X}; it is not allowed",
                          ErrorCode.VALIDATION_FAILED)


def check_json_value(value: Any, where: str = "the JSON body") -> Any:
    """``value`` (parsed JSON) when no container is nested deeper than MAX_JSON_DEPTH and no string holds a control
    character; walked without recursion so a deep document cannot exhaust the stack here either."""
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, str):
            refuse_control_characters(item, f"a string in {where}")
        elif isinstance(item, (dict, list)):
            if depth > MAX_JSON_DEPTH:
                raise Face3dError(f"{where} is nested more than {MAX_JSON_DEPTH} levels deep", ErrorCode.INVALID_REQUEST)
            children: Iterable[Any] = [*item.keys(), *item.values()] if isinstance(item, dict) else item
            pending.extend((child, depth + 1) for child in children)
    return value


def loads_checked(text: str | bytes, where: str = "the JSON body") -> Any:
    """json.loads with the depth and string checks; a document too deep for the parser itself is a 400 too.
    Malformed JSON still raises json.JSONDecodeError (a ValueError), as callers expect."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise Face3dError(f"{where} is nested more than {MAX_JSON_DEPTH} levels deep",
                          ErrorCode.INVALID_REQUEST) from None
    return check_json_value(value, where)


class _CheckedJSON:
    """What request.get_json() parses with (a Face3dError passes through ``silent=True``: it is no ValueError).
    Responses keep the app's own provider."""

    loads = staticmethod(loads_checked)
    dumps = staticmethod(json.dumps)


class CheckedMultiDict(ImmutableMultiDict):
    """Query arguments, form fields and uploaded files' names, checked as werkzeug builds them."""

    def __init__(self, mapping: Any = None) -> None:
        super().__init__(mapping)
        for key, value in self.items(multi=True):
            refuse_control_characters(key or "", "a field name")
            if isinstance(value, FileStorage):
                refuse_control_characters(value.filename or "", f"the file name of {key!r}")
            elif isinstance(value, str):
                refuse_control_characters(value, f"the field {key!r}")


class CheckedRequest(Request):
    parameter_storage_class = CheckedMultiDict

    @property
    def json_module(self) -> Any:
        return _CheckedJSON

    @json_module.setter
    def json_module(self, value: Any) -> None:
        """Flask hands each request the app's JSON provider; request bodies keep the checked parser."""


def _check_path() -> None:
    for name, value in (request.view_args or {}).items():
        if isinstance(value, str):
            refuse_control_characters(value, f"the path parameter {name}")


def init_app(app: Flask) -> None:
    app.request_class = CheckedRequest
    app.before_request(_check_path)

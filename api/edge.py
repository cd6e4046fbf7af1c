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
_ESCAPE = re.compile(r"\\[bfnrtu]")
_RAW_DEL_OR_C1 = re.compile("[\x7f-\x9f]")


def refuse_control_characters(value: str, where: str) -> None:
    """422 when ``value`` holds a control character or a lone surrogate (``where`` names it in the message)."""
    found = _REFUSED.search(value)
    if found:
        raise Face3dError(f"{where} contains the control character U+{ord(found.group()):04X}; it is not allowed",
                          ErrorCode.VALIDATION_FAILED)


def check_json_value(value: Any, where: str = "the JSON body", strings: bool = True) -> Any:
    """``value`` (parsed JSON) when no container is nested deeper than MAX_JSON_DEPTH and (``strings``) no string
    holds a control character; walked level by level, without recursion, so a deep document cannot exhaust the stack
    here either, and a 400,000-item manifest costs a fraction of a second."""
    level, depth = [value], 1
    while level:
        if strings:
            for item in level:
                _check_strings(item, where)
        containers = [child for item in level for child in _children(item) if isinstance(child, (dict, list))]
        if containers and depth >= MAX_JSON_DEPTH:
            raise Face3dError(f"{where} is nested more than {MAX_JSON_DEPTH} levels deep", ErrorCode.INVALID_REQUEST)
        level, depth = containers, depth + 1
    return value


def _children(item: Any) -> Iterable[Any]:
    if isinstance(item, dict):
        return item.values()
    return item if isinstance(item, list) else ()


def _check_strings(item: Any, where: str) -> None:
    """The strings directly inside ``item`` (its keys, its values), or ``item`` itself when it is one."""
    if isinstance(item, str):
        refuse_control_characters(item, f"a string in {where}")
        return
    for child in [*item.keys(), *item.values()] if isinstance(item, dict) else _children(item):
        if isinstance(child, str):
            refuse_control_characters(child, f"a string in {where}")


def loads_checked(text: str | bytes, where: str = "the JSON body") -> Any:
    """json.loads with the depth and string checks; a document too deep for the parser itself is a 400 too.
    Malformed JSON still raises json.JSONDecodeError (a ValueError), as callers expect."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise Face3dError(f"{where} is nested more than {MAX_JSON_DEPTH} levels deep",
                          ErrorCode.INVALID_REQUEST) from None
    return check_json_value(value, where, strings=_may_hold_refused(text))


def _may_hold_refused(text: str | bytes) -> bool:
    """Whether a string of this JSON text can hold a refused character at all: raw C0 controls are not valid JSON,
    so only an escape (\\n, \\u0000, \\ud800) or a raw DEL / C1 character brings one in. A 400,000-item manifest
    has neither, and its strings are then not walked one by one."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:          # UTF-16/32 JSON: no shortcut
            return True
    if "\x7f" in text or (not text.isascii() and _RAW_DEL_OR_C1.search(text)):
        return True
    return "\\" in text and _ESCAPE.search(text) is not None


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

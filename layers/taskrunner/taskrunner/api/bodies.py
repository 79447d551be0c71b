"""Request bodies the API reads: UTF-8 JSON of bounded depth whose numbers and strings Python can hold.

API Gateway hands a body to the handler unparsed (base64 when it is not text). Before Powertools
reads it, :func:`body_problem` refuses what it cannot read safely: another media type (415), bytes
that are not UTF-8, integers beyond Python's int-string limit, nesting deeper than
:data:`MAX_BODY_DEPTH` and lone surrogates (400). A body that is simply not JSON is left to request
validation, which answers 422 with the position of the error.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

from taskrunner.api.problems import problem
from taskrunner.pack.limits import MAX_DEPTH, bounded_int, too_deep

# The request's own levels around a manifest or inputs, so those reach their own (positioned) depth check.
MAX_BODY_DEPTH = MAX_DEPTH + 8

MALFORMED_BODY = "MalformedBody"
_JSON_TYPES = ("application/json",)
_SEND_JSON = "Send the body as UTF-8 JSON with 'Content-Type: application/json'."


def _header(event: Mapping[str, Any], name: str) -> str:
    for key, value in (event.get("headers") or {}).items():
        if str(key).lower() == name:
            return str(value)
    return ""


def _json_problem(text: str) -> str | None:
    """Why ``text`` cannot be used as a JSON document, or None (including plain syntax errors)."""
    try:
        document = json.loads(text, parse_int=bounded_int)
    except json.JSONDecodeError:
        return None  # request validation answers 422 with the position
    except RecursionError:
        return f"The body nests arrays or objects deeper than {MAX_BODY_DEPTH} levels."
    except ValueError as error:  # an integer literal too long to be a JSON number (pack.limits)
        return f"The body has a number that cannot be read: {error}."
    if too_deep(document, MAX_BODY_DEPTH) is not None:
        return f"The body nests arrays or objects deeper than {MAX_BODY_DEPTH} levels."
    try:
        json.dumps(document, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return "The body has a lone surrogate escape (e.g. \\ud800) that is not a Unicode character."
    return None


def body_problem(event: Mapping[str, Any]) -> dict[str, Any] | None:
    """The problem (400/415) of a payload v2 event whose body the API refuses to read, else None."""
    raw = event.get("body")
    if not raw:
        return None
    path = str(event.get("rawPath") or "") or None
    content_type = _header(event, "content-type").split(";")[0].strip().lower()
    if content_type and content_type not in _JSON_TYPES:
        detail = f"The body is {content_type}; this API reads application/json only."
        return problem(415, "UnsupportedMediaType", detail, remediation=_SEND_JSON, instance=path)
    try:
        data = base64.b64decode(str(raw), validate=True) if event.get("isBase64Encoded") else None
        text = data.decode("utf-8") if data is not None else str(raw)
    except (binascii.Error, UnicodeDecodeError) as error:
        detail = f"The body is not valid UTF-8 ({error})."
        return problem(400, MALFORMED_BODY, detail, remediation=_SEND_JSON, instance=path)
    reason = _json_problem(text)
    if reason is None:
        return None
    return problem(400, MALFORMED_BODY, reason, remediation=_SEND_JSON, instance=path)

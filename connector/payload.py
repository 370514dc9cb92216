"""The raw body of a webhook delivery as JSON we can store: read once at the door, again
in the worker, the same way both times.

Pure: bytes in, plain data out, or a PayloadError whose message says what is wrong.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

_UNSTORABLE_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


class PayloadError(ValueError):
    """The body is not a Jira webhook we can understand; the message says why."""


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"{text} is too large")
    return number


def _storable(value: Any) -> Any:
    """The value with NULs and lone surrogates replaced by U+FFFD (they cannot be stored)."""
    if isinstance(value, str):
        return _UNSTORABLE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_storable(v) for v in value]
    if isinstance(value, dict):
        return {_storable(k): _storable(v) for k, v in value.items()}
    return value


def decode_body(raw: bytes | str) -> Any:
    """The decoded JSON of a delivery, as the intake and the worker both read it.

    JSON on the wire is UTF-8 (a leading byte order mark is tolerated); NaN, Infinity
    and numbers too large for a float are not JSON and no database accepts them. A NUL
    or a lone surrogate escaped in a string is valid JSON but cannot be stored, so it
    is replaced rather than letting the delivery fail in the worker.
    """
    try:
        text = raw.decode("utf-8-sig") if isinstance(raw, bytes) else raw.removeprefix("\ufeff")
        payload = json.loads(text, parse_constant=_not_json, parse_float=_finite)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise PayloadError("the body is not valid JSON") from None
    encoded = raw if isinstance(raw, bytes) else raw.encode("utf-8", "surrogatepass")
    if _UNSTORABLE_ESCAPE.search(encoded):
        try:
            payload = _storable(payload)
        except RecursionError:
            raise PayloadError("the body is nested too deeply") from None
    return payload

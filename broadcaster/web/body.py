"""Strict JSON request bodies: malformed → 400, wrong shape → 422 naming the field."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from broadcaster.web.errors import bad_request, invalid, type_name


async def read_object(request: web.Request, allowed: set[str]) -> dict[str, Any]:
    """The body as a JSON object holding only ``allowed`` keys (an empty body is ``{}``)."""
    raw = await request.read()  # raises 413 past client_max_size
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise bad_request(f"body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise invalid(f"body must be a JSON object, not {type_name(body)}")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise invalid(f"unknown field {unknown[0]!r}")
    return body


def req_str(body: dict[str, Any], name: str) -> str:
    if name not in body:
        raise invalid(f"field {name!r} is required")
    if body[name] is None:
        raise invalid(f"field {name!r} must be a string, not null")
    value = opt_str(body, name)
    if not value:
        raise invalid(f"field {name!r} must not be empty")
    return value


def opt_str(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid(f"field {name!r} must be a string, not {type_name(value)}")
    return value

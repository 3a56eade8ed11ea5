"""Strict JSON request bodies: malformed → 400, wrong shape → 422 naming the field.

Whatever a client sends ends in a 4xx with a reason, never a 5xx: numbers longer than
Python converts (ValueError), nesting deeper than its parser recurses (RecursionError),
strings holding lone surrogates (they cannot be stored or compared as UTF-8), a body
that trickles in (408 after ``http_body_timeout_seconds``) or never finishes because
the client went away.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from broadcaster.web.errors import ApiError, bad_request, invalid, type_name
from broadcaster.web.keys import SETTINGS


async def read_raw(request: web.Request) -> bytes:
    """Read the whole body within the body timeout (413 past client_max_size)."""
    timeout = request.app[SETTINGS].http_body_timeout_seconds
    try:
        return await asyncio.wait_for(request.read(), timeout)
    except TimeoutError:
        raise ApiError(408, f"the request body did not arrive within {timeout:g} s") from None
    except (ConnectionError, asyncio.IncompleteReadError) as exc:
        raise bad_request(f"the request body was cut short ({type(exc).__name__})") from None


def parse_json(raw: bytes) -> Any:
    """``raw`` as JSON; 400 (with the parser's reason) for anything that is not."""
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise bad_request(f"body is not valid JSON: {exc}") from None
    except ValueError as exc:  # e.g. an integer longer than Python converts
        raise bad_request(f"body is not acceptable JSON: {str(exc)[:120]}") from None
    except RecursionError:
        raise bad_request("body is not acceptable JSON: nested too deeply") from None


def check_text(value: Any, where: str = "body") -> None:
    """422 when any string in ``value`` (keys included) is not valid Unicode text."""
    stack = [(value, where)]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise invalid(f"{path} holds a lone surrogate (not valid Unicode)") from None
        elif isinstance(item, dict):
            for key, sub in item.items():
                stack.append((key, path))
                stack.append((sub, f"field {key!r}" if path == "body" else path))
        elif isinstance(item, list):
            stack.extend((sub, path) for sub in item)


async def read_object(request: web.Request, allowed: set[str]) -> dict[str, Any]:
    """Read the body as a JSON object holding only ``allowed`` keys (empty body: ``{}``)."""
    raw = await read_raw(request)
    if not raw.strip():
        return {}
    body = parse_json(raw)
    if not isinstance(body, dict):
        raise invalid(f"body must be a JSON object, not {type_name(body)}")
    check_text(body)
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise invalid(f"unknown field {unknown[0][:64]!r}")
    return body


def req_str(body: dict[str, Any], name: str) -> str:
    """Return the required string field ``name``; 422 naming it when absent, null or empty."""
    if name not in body:
        raise invalid(f"field {name!r} is required")
    if body[name] is None:
        raise invalid(f"field {name!r} must be a string, not null")
    value = opt_str(body, name)
    if not value:
        raise invalid(f"field {name!r} must not be empty")
    return value


def opt_str(body: dict[str, Any], name: str) -> str | None:
    """Return the optional string field ``name`` (None when absent or null); 422 if not text."""
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid(f"field {name!r} must be a string, not {type_name(value)}")
    return value

"""One error shape for every failure: ``{"error": "<reason>"}`` with a 4xx/5xx status."""

from __future__ import annotations

from typing import Any

from aiohttp import web


class ApiError(Exception):
    """Raised by handlers; the error middleware turns it into a JSON answer."""

    def __init__(self, status: int, reason: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = headers


def json_error(status: int, reason: str, headers: dict[str, str] | None = None) -> web.Response:
    """Answer ``{"error": reason}`` with ``status``: the one shape pages and tests read."""
    return web.json_response({"error": reason}, status=status, headers=headers)


def bad_request(reason: str) -> ApiError:
    """Return a 400 to raise: the request itself is unreadable (e.g. not JSON)."""
    return ApiError(400, reason)


def unauthorized(reason: str = "host key missing or wrong") -> ApiError:
    """Return a 401 to raise: no credential, or one that is wrong, forged or expired."""
    return ApiError(401, reason)


def forbidden(reason: str) -> ApiError:
    """Return a 403 to raise: a valid credential that does not allow this."""
    return ApiError(403, reason)


def not_found(reason: str) -> ApiError:
    """Return a 404 to raise: no such webinar, participant or ban."""
    return ApiError(404, reason)


def conflict(reason: str) -> ApiError:
    """Return a 409 to raise: the request clashes with the current state."""
    return ApiError(409, reason)


def gone(reason: str) -> ApiError:
    """Return a 410 to raise: it existed but is over (e.g. an ended webinar)."""
    return ApiError(410, reason)


def invalid(reason: str) -> ApiError:
    """Return a 422 to raise: well-formed JSON, wrong content; ``reason`` names the field."""
    return ApiError(422, reason)


def too_many(reason: str, retry_after: float) -> ApiError:
    """Return a 429 to raise, with ``Retry-After`` in whole seconds (at least 1)."""
    return ApiError(429, reason, headers={"Retry-After": str(max(1, round(retry_after)))})


def type_name(value: Any) -> str:
    """Return JSON's name for a Python value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"

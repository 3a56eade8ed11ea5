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
    return web.json_response({"error": reason}, status=status, headers=headers)


def bad_request(reason: str) -> ApiError:
    return ApiError(400, reason)


def unauthorized(reason: str = "host key missing or wrong") -> ApiError:
    return ApiError(401, reason)


def forbidden(reason: str) -> ApiError:
    return ApiError(403, reason)


def not_found(reason: str) -> ApiError:
    return ApiError(404, reason)


def conflict(reason: str) -> ApiError:
    return ApiError(409, reason)


def gone(reason: str) -> ApiError:
    return ApiError(410, reason)


def invalid(reason: str) -> ApiError:
    return ApiError(422, reason)


def too_many(reason: str, retry_after: float) -> ApiError:
    return ApiError(429, reason, headers={"Retry-After": str(max(1, round(retry_after)))})


def type_name(value: Any) -> str:
    """JSON's name for a Python value's type, for error messages."""
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

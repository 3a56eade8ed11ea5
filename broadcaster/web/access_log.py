"""aiohttp's access log through loguru, without query strings.

Query strings can carry a presenter invite code; the log does not need them. Paths are
logged as sent (percent-encoded, cut at 200 characters): a decoded ``%0a`` would
otherwise let anyone write a line of their own into the log.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from loguru import logger

MAX_LOGGED_PATH = 200


def log_path(request: web.BaseRequest) -> str:
    """Return the request's path for a log line: still percent-encoded, no query, bounded."""
    path = request.rel_url.raw_path
    return path if len(path) <= MAX_LOGGED_PATH else path[:MAX_LOGGED_PATH] + "..."


class AccessLogger(AbstractAccessLogger):
    """aiohttp's access log as loguru debug lines, through :func:`log_path` only."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        """Log one request: method, safe path, status and duration (never the query)."""
        logger.debug(
            "{} {} {} {:.1f} ms", request.method, log_path(request), response.status, time * 1000
        )

    @property
    def enabled(self) -> bool:
        """Always on: loguru's level decides whether the debug line is written."""
        return True

"""aiohttp's access log through loguru, without query strings.

Query strings can carry a presenter invite code; the log does not need them.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from loguru import logger


class AccessLogger(AbstractAccessLogger):
    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        logger.debug(
            "{} {} {} {:.1f} ms", request.method, request.path, response.status, time * 1000
        )

    @property
    def enabled(self) -> bool:
        return True

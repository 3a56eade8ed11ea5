"""Log set-up for every broadcaster process: loguru to stderr, secrets scrubbed.

Secrets must never reach a log line, and we do not control what libraries log
(pipecat's LiveAvatar client logs its client token and ``ws_url``), so every line
goes through :func:`make_scrubber` on its way out: our own log lines here, the
children's output in the supervisor.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from loguru import logger

from broadcaster.config import Settings

if TYPE_CHECKING:
    from loguru import Message

#: LiveKit access tokens (JWTs) and secrets passed in URL query strings
_JWT = re.compile(r"eyJ[\w-]{8,}\.[\w-]{8,}\.[\w-]{8,}")
_URL_SECRET = re.compile(r"([?&](?:token|secret|key)=)[^&\s'\"]+")


def make_scrubber(secrets: Sequence[str]) -> Callable[[str], str]:
    """Return a function that replaces every secret and access token in a line with ***."""
    values = sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True)

    def scrub(line: str) -> str:
        for value in values:
            if value in line:
                line = line.replace(value, "***")
        return _URL_SECRET.sub(r"\1***", _JWT.sub("***", line))

    return scrub


def configure_logging(settings: Settings) -> None:
    """Send loguru to stderr with the settings' secrets (and any token) scrubbed."""
    scrub = make_scrubber(settings.secret_values())

    def sink(message: Message) -> None:
        sys.stderr.write(scrub(str(message)))

    logger.remove()
    logger.add(
        sink,
        level="INFO",
        format="{time:HH:mm:ss.SSS} {level: <7} {name}: {message}",
        colorize=False,
    )

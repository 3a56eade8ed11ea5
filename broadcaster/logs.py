"""Log set-up for every broadcaster process: loguru to stderr, secrets scrubbed.

Secrets must never reach a log line, and we do not control what libraries log
(pipecat's LiveAvatar client logs its client token and ``ws_url``), so every line
goes through :func:`make_scrubber` on its way out: our own log lines here, the
children's output in the supervisor.
"""

from __future__ import annotations

import json
import re
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from loguru import logger

from broadcaster.config import Settings

if TYPE_CHECKING:
    from loguru import Message, Record

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


def json_line(record: Record, scrub: Callable[[str], str]) -> str:
    """Format one log record as a JSON line (``log_format = "json"``), message scrubbed."""
    out = {
        "time": record["time"].isoformat(timespec="milliseconds"),
        "level": record["level"].name,
        "name": record["name"],
        "message": scrub(record["message"]),
    }
    if record["exception"] is not None:
        out["exception"] = scrub("".join(traceback.format_exception(*record["exception"])))
    return json.dumps(out, ensure_ascii=False) + "\n"


def child_line(name: str, line: str, log_format: str) -> str:
    """Format a child's (already scrubbed) output line as the supervisor prints it."""
    if log_format != "json":
        return f"{name} | {line}\n"
    try:
        data = json.loads(line)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        data = {"message": line}
    return json.dumps({"process": name, **data}, ensure_ascii=False) + "\n"


def configure_logging(settings: Settings) -> None:
    """Send loguru to stderr, as text or JSON lines, with secrets (and any token) scrubbed."""
    scrub = make_scrubber(settings.secret_values())
    logger.remove()
    if settings.log_format == "json":

        def json_sink(message: Message) -> None:
            sys.stderr.write(json_line(message.record, scrub))

        logger.add(json_sink, level="INFO", format="{message}", colorize=False)
        return

    def sink(message: Message) -> None:
        sys.stderr.write(scrub(str(message)))

    logger.add(
        sink,
        level="INFO",
        format="{time:HH:mm:ss.SSS} {level: <7} {name}: {message}",
        colorize=False,
    )
